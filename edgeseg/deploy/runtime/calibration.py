"""Images for calibration (INT8) and parity checks, as model-ready batches. numpy + OpenCV, torch-free.

`--calib DIR` should hold target-domain frames: INT8 ranges calibrated on what the deployed model will
see. Without it, parity checks use `synthetic_frames`: deterministic street-like frames (sky/facade/road
bands, boxes, texture) whose predictions are not dominated by near-ties the way pure noise is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import DatasetError, InputPathError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under `folder` (recursive), sorted, evenly subsampled down to `limit`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputPathError(f"calibration folder '{folder}' does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) under '{folder}'; point --calib at a "
            "folder of target-domain frames"
        )
    if limit is not None and len(files) > limit:
        # even spread over the sorted list: covers every sequence/domain, not just the first one
        idx = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in idx]
    return files


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode image '{path}'; remove it from the calibration folder")
    return image


def synthetic_frames(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """`n` deterministic BGR uint8 street-like frames of (h, w)."""
    h, w = size
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        img = np.empty((h, w, 3), dtype=np.float32)
        horizon = int(h * rng.uniform(0.3, 0.5))
        road = int(h * rng.uniform(0.6, 0.75))
        img[:horizon] = rng.uniform(120, 240, 3)  # sky
        img[horizon:road] = rng.uniform(40, 160, 3)  # facades
        img[road:] = rng.uniform(50, 110, 3)  # road
        for _ in range(int(rng.integers(3, 9))):  # objects
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            bh, bw = int(rng.integers(h // 16 + 1, h // 3 + 2)), int(rng.integers(w // 16 + 1, w // 4 + 2))
            img[y0 : y0 + bh, x0 : x0 + bw] = rng.uniform(0, 255, 3)
        img += cv2.GaussianBlur(rng.normal(0, 12, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def load_frames(folder: str | Path | None, n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """`n` frames from `folder` (evenly spread), or synthetic frames when no folder is given."""
    if folder is None:
        return synthetic_frames(n, size, seed)
    return [read_bgr(p) for p in list_images(folder, n)]


class CalibrationBatcher:
    """Fixed-size batches of preprocessed calibration images, read lazily (TensorRT's calibrator and ONNX
    Runtime's CalibrationDataReader both pull one batch at a time).

    `prepare(frames) -> batch` is the model's own preprocessing (resize + normalise, or uint8 NHWC for
    graphs with preprocessing built in). A last partial batch is dropped: calibrators need full batches.
    """

    def __init__(
        self, files: Sequence[Path], batch_size: int, prepare: Callable[[list[np.ndarray]], np.ndarray]
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if len(files) < batch_size:
            raise DatasetError(f"{len(files)} calibration images for batch size {batch_size}; add images")
        self.files = list(files)
        self.batch_size = batch_size
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.files) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            chunk = self.files[i * self.batch_size : (i + 1) * self.batch_size]
            yield np.ascontiguousarray(self.prepare([read_bgr(p) for p in chunk]))
