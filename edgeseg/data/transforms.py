"""Resize and crop of (BGR uint8 image, uint8 trainId label) pairs, OpenCV only (as mmseg's pipeline).

Labels are always resized with nearest neighbour and padded with 255 (ignore), so no invented
classes appear at boundaries. All randomness comes from the `rng` argument: same seed, same crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.data.labels import IGNORE_INDEX

Pair = tuple[np.ndarray, np.ndarray]


def resize(
    image: np.ndarray, label: np.ndarray | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to exactly (height, width)."""
    h, w = size
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def pad_to(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> Pair:
    """Pad bottom/right up to `size` (image 0, label ignore)."""
    h, w = image.shape[:2]
    ph, pw = max(size[0] - h, 0), max(size[1] - w, 0)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    return image, label


def random_crop(
    image: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    cat_max_ratio: float = 0.75,
    tries: int = 10,
) -> Pair:
    """Random crop; retry up to `tries` times until no single class covers >= cat_max_ratio of it.

    As mmseg's RandomCrop: only labelled pixels count, a crop with one class only is rejected, and
    the last try is kept if none qualifies.
    """
    image, label = pad_to(image, label, size)
    h, w = label.shape
    ch, cw = size
    for _ in range(tries if cat_max_ratio < 1.0 else 1):
        y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = label[y : y + ch, x : x + cw]
        counts = np.bincount(crop.ravel(), minlength=256)[:IGNORE_INDEX]
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
    return image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]
