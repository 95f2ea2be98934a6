"""Training transforms on (BGR uint8 image, uint8 trainId label) pairs, OpenCV only (as mmseg's pipeline).

Labels are always resized with nearest neighbour and padded with 255 (ignore), so no invented
classes appear at boundaries. All randomness comes from the `rng` argument: same seed, same crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.data.labels import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

Pair = tuple[np.ndarray, np.ndarray]


def resize(image: np.ndarray, label: np.ndarray | None, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to exactly (height, width)."""
    h, w = size
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def rescale(image: np.ndarray, label: np.ndarray | None, scale: tuple[int, int],
            ratio: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep-ratio resize so the image fits `scale` (long, short edge) x `ratio`, as mmseg's Resize."""
    h, w = image.shape[:2]
    long_edge, short_edge = max(scale) * ratio, min(scale) * ratio
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return resize(image, label, (max(int(h * factor + 0.5), 1), max(int(w * factor + 0.5), 1)))


def pad_to(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> Pair:
    """Pad bottom/right up to `size` (image 0, label ignore)."""
    h, w = image.shape[:2]
    ph, pw = max(size[0] - h, 0), max(size[1] - w, 0)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    return image, label


def random_crop(image: np.ndarray, label: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                cat_max_ratio: float = 0.75, tries: int = 10) -> Pair:
    """Random crop; retry up to `tries` times until no single class covers >= cat_max_ratio of it.

    As mmseg's RandomCrop: only labelled pixels count, a crop with one class only is rejected, and
    the last try is kept if none qualifies.
    """
    image, label = pad_to(image, label, size)
    h, w = label.shape
    ch, cw = size
    for _ in range(tries if cat_max_ratio < 1.0 else 1):
        y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = label[y:y + ch, x:x + cw]
        counts = np.bincount(crop.ravel(), minlength=256)[:IGNORE_INDEX]
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
    return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]


def random_flip(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> Pair:
    if rng.random() < p:
        return image[:, ::-1].copy(), label[:, ::-1].copy()
    return image, label


def photometric_distortion(image: np.ndarray, rng: np.random.Generator, brightness: int = 32,
                           contrast: tuple[float, float] = (0.5, 1.5),
                           saturation: tuple[float, float] = (0.5, 1.5), hue: int = 18) -> np.ndarray:
    """mmseg's PhotoMetricDistortion: each step with probability 1/2, contrast before or after colour."""
    img = image.astype(np.float32)

    def clip(a: np.ndarray) -> np.ndarray:
        return np.clip(a, 0, 255)

    if rng.random() < 0.5:
        img = clip(img + rng.uniform(-brightness, brightness))
    contrast_first = rng.random() < 0.5
    if contrast_first and rng.random() < 0.5:
        img = clip(img * rng.uniform(*contrast))
    do_saturation, do_hue = rng.random() < 0.5, rng.random() < 0.5
    if do_saturation or do_hue:
        hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.int32)
        if do_saturation:
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*saturation), 0, 255).astype(np.int32)
        if do_hue:  # OpenCV hue is 0..179 (degrees / 2)
            hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-hue, hue + 1))) % 180
        img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    if not contrast_first and rng.random() < 0.5:
        img = clip(img * rng.uniform(*contrast))
    return img.astype(np.uint8)


def normalize(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """BGR uint8 HxWx3 -> float32 3xHxW RGB, (x - mean) / std with 0..255-unit statistics."""
    rgb = image[..., ::-1].astype(np.float32)
    rgb = (rgb - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


@dataclass(frozen=True)
class TrainTransform:
    """The standard UDA training pipeline: rescale x ratio -> crop (cat_max_ratio) -> flip -> colour -> normalise.

    `scale` is the (long, short) edge the image is first fitted to (DAFormer: (1024, 512) for
    Cityscapes); `ratio_range` jitters it (mmseg default (0.5, 2.0)).
    """

    crop: tuple[int, int] = (512, 512)
    scale: tuple[int, int] | None = None
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip: float = 0.5
    photometric: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scale = self.scale or (max(image.shape[:2]), min(image.shape[:2]))
        image, label_r = rescale(image, label, scale, float(rng.uniform(*self.ratio_range)))
        assert label_r is not None
        image, label = random_crop(image, label_r, self.crop, rng, self.cat_max_ratio)
        image, label = random_flip(image, label, rng, self.flip)
        if self.photometric:
            image = photometric_distortion(image, rng)
        return normalize(image, self.mean, self.std), label.astype(np.int64)


@dataclass(frozen=True)
class EvalTransform:
    """Optional fixed resize, then normalise (labels untouched: metrics are at label resolution)."""

    size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.size is not None:
            image, _ = resize(image, None, self.size)
        return normalize(image, self.mean, self.std), label.astype(np.int64)
