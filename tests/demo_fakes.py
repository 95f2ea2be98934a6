"""Test doubles for the demo: a colour-threshold segmenter, scripted captures and a synthetic clip writer.

Not a test module (no test_ prefix); imported by tests/test_demo*.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

# Three classes with loud, distinct colours (RGB), so overlays differ visibly where labels differ.
CLASSES = ["dark", "bright", "blue"]
PALETTE_RGB = [(0, 255, 0), (255, 0, 255), (255, 255, 0)]


class ColourSegmenter:
    """Labels each pixel by thresholding: blue channel > 200 -> 2, else grey level > 128 -> 1, else 0.

    Records the marker value of every frame it sees (pixel [0, 0, 1], set by `marked_frame`), so tests can
    tell which frames reached inference, and can sleep to play a slow model.
    """

    backend = "fake-colour"
    input_size = None

    def __init__(self, delay_s: float = 0.0, fail_after: int | None = None) -> None:
        self.meta = {"classes": list(CLASSES), "palette": [list(c) for c in PALETTE_RGB], "output": "labels"}
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.seen: list[int] = []
        self.closed = False
        self._lock = threading.Lock()

    def predict(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame in frames:
            with self._lock:
                if self.fail_after is not None and len(self.seen) >= self.fail_after:
                    raise RuntimeError("fake backend crashed")
                self.seen.append(int(frame[0, 0, 1]))
            if self.delay_s:
                time.sleep(self.delay_s)
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            labels = (grey > 128).astype(np.uint8)
            labels[frame[..., 0] > 200] = 2
            out.append(labels)
        return out

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def two_region_frame(h: int = 64, w: int = 128, left: int = 110, right: int = 150) -> np.ndarray:
    """Left half grey `left`, right half grey `right`: close in colour, on opposite sides of the threshold."""
    frame = np.empty((h, w, 3), np.uint8)
    frame[:, : w // 2] = left
    frame[:, w // 2 :] = right
    return frame


def marked_frame(index: int, h: int = 64, w: int = 128) -> np.ndarray:
    frame = two_region_frame(h, w)
    frame[0, 0, 1] = index % 256
    return frame


def write_clip(path: Path, frames: int = 20, h: int = 64, w: int = 128, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(two_region_frame(h, w))
    writer.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


class ScriptedCapture:
    """A live capture that yields `frames` marked frames (optionally paced), then fails like a dead stream."""

    def __init__(self, frames: int, start: int = 0, interval_s: float = 0.0) -> None:
        self.remaining = frames
        self.next_index = start
        self.interval_s = interval_s
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.remaining <= 0 or self.released:
            return False, None
        if self.interval_s:
            time.sleep(self.interval_s)
        self.remaining -= 1
        self.next_index += 1
        return True, marked_frame(self.next_index - 1)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def export_tiny_onnx(path: Path, h: int, w: int) -> Path:
    """segformer_tiny (random weights) as ONNX with the edgeseg metadata the runtimes read (needs torch;
    stands in for `edgeseg export` in tests)."""
    import onnx
    import torch

    from edgeseg.data.labels import CLASSES as CITYSCAPES
    from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD, PALETTE
    from edgeseg.deploy.runtime import onnx_meta
    from edgeseg.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("segformer_tiny", num_classes=19).eval()
    torch.onnx.export(
        model,
        torch.randn(1, 3, h, w),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    graph = onnx.load(str(path))
    meta = {
        "format": onnx_meta.FORMAT,
        "format_version": onnx_meta.FORMAT_VERSION,
        "arch": "segformer_tiny",
        "num_classes": 19,
        "classes": list(CITYSCAPES),
        "palette": [list(c) for c in PALETTE],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "input_size": [h, w],
        "batch": 1,
        "output": "logits",
        "preprocess": False,
        "precision": "fp32",
        "opset": 17,
    }
    for key, value in onnx_meta.encode(meta).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))
    return path
