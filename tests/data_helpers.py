"""Builders for tiny dataset trees in each dataset's real layout (used by the data/eval tests)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgeseg.data.image_io import encode_palette_png
from edgeseg.data.labels import CITYSCAPES_LABELS

H, W = 24, 32


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def image(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def cityscapes_label_ids(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """Blocky labelIds over all 34 ids (void ones included), like real annotations."""
    blocks = rng.integers(0, 34, (h // 4 + 1, w // 4 + 1)).astype(np.uint8)
    return cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)


def make_cityscapes(
    root: Path,
    split: str = "val",
    cities: tuple[str, ...] = ("aachen", "bonn"),
    per_city: int = 2,
    seed: int = 0,
    suffix: str = "labelIds",
) -> list[str]:
    """leftImg8bit/{split}/{city}/{id}_leftImg8bit.png + gtFine/.../{id}_gtFine_{suffix}.png; returns frame ids."""
    rng = np.random.default_rng(seed)
    ids = []
    for city in cities:
        for k in range(per_city):
            fid = f"{city}_{k:06d}_{19 + k:06d}"
            ids.append(fid)
            write(root / "leftImg8bit" / split / city / f"{fid}_leftImg8bit.png", image(rng))
            lab = cityscapes_label_ids(rng)
            if suffix == "labelTrainIds":
                from edgeseg.data.labels import CITYSCAPES_LABEL_IDS

                lab = CITYSCAPES_LABEL_IDS.lut[lab]
            write(root / "gtFine" / split / city / f"{fid}_gtFine_{suffix}.png", lab)
    return ids


def cityscapes_palette() -> np.ndarray:
    pal = np.zeros((256, 3), np.uint8)
    for lab in CITYSCAPES_LABELS:
        pal[lab.id] = lab.color
    return pal


def write_palette_png(path: Path, indices: np.ndarray, palette: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_palette_png(indices, palette))
    return path


def distinct_palette(n: int = 256) -> np.ndarray:
    """A palette whose colours are all different (like Mapillary's)."""
    i = np.arange(n)
    return np.stack([i, (i * 7) % 256, (i * 13 + 5) % 256], axis=1).astype(np.uint8)
