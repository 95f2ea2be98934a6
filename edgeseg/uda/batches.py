"""Training batches from `SegDataset`s: resize, random crop, flip, rare-class sampling, normalisation.

Built on `edgeseg.data.transforms` (resize / crop / flip) and `edgeseg.data.sampling` (class statistics,
rare-class probabilities). Unlike a torch DataLoader, every random draw comes from one
`numpy.random.Generator` owned by the trainer, whose state is saved in checkpoints, so a resumed run sees
exactly the batches an uninterrupted run would have seen. Loading is synchronous in the training process:
on the small benchmark images are cached in memory, and on a GPU box the step dominates anyway.

Rare-class sampling (DAFormer, Hoyer et al. 2022): with f_c the pixel frequency of class c in the source
set, a class is drawn with P(c) = softmax_c((1 - f_c) / T), then an image containing >= `min_pixels`
pixels of c (at the label files' resolution) uniformly, then up to 10 random crops until one holds
> min_crop_ratio * min_pixels pixels of c (after any resize).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.data.datasets import SegDataset
from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.data.sampling import class_frequencies, load_or_compute_stats, rcs_probabilities
from edgeseg.data.transforms import random_crop, resize
from edgeseg.errors import DatasetError


def resize_pair(
    image: np.ndarray, label: np.ndarray | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to (h, w) (bilinear image, nearest label); (0, 0) keeps the original size."""
    if size[0] <= 0 or size[1] <= 0 or image.shape[:2] == tuple(size):
        return image, label
    return resize(image, label, size)


@dataclass
class RareClassCropSampler:
    """P(class) and, per class, the images that contain it; the class is kept to steer the crop."""

    classes: np.ndarray  # class ids that can be sampled
    probs: np.ndarray  # their probabilities
    images_with_class: dict[int, np.ndarray]
    min_pixels: int
    min_crop_ratio: float

    @classmethod
    def from_counts(
        cls, counts: np.ndarray, temperature: float, min_pixels: int, min_crop_ratio: float
    ) -> RareClassCropSampler:
        """`counts` (N images, C classes) pixel counts per image; classes no image has >= min_pixels of
        are not sampled (DAFormer's statistics leave them out the same way)."""
        probs_all = rcs_probabilities(class_frequencies(counts.sum(axis=0).astype(np.float64)), temperature)
        present = {c: np.flatnonzero(counts[:, c] >= min_pixels) for c in range(counts.shape[1])}
        classes = np.array(
            [c for c, imgs in present.items() if len(imgs) and probs_all[c] > 0], dtype=np.int64
        )
        if len(classes) == 0:
            raise DatasetError(
                f"rare-class sampling: no class has >= {min_pixels} pixels in any source image; "
                "lower data.rcs_min_pixels or disable it with data.rcs_temperature=0"
            )
        probs = probs_all[classes] / probs_all[classes].sum()
        return cls(classes, probs, {int(c): present[int(c)] for c in classes}, min_pixels, min_crop_ratio)

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        c = int(rng.choice(self.classes, p=self.probs))
        return c, int(rng.choice(self.images_with_class[c]))


def rare_class_sampler(
    dataset: SegDataset, temperature: float, min_pixels: int, min_crop_ratio: float, cache: Path
) -> RareClassCropSampler:
    stats = load_or_compute_stats(dataset, cache)
    return RareClassCropSampler.from_counts(stats.counts, temperature, min_pixels, min_crop_ratio)


class BatchStream:
    """Random crops from one dataset split; labelled or not."""

    def __init__(
        self,
        dataset: SegDataset,
        crop: tuple[int, int],
        resize: tuple[int, int] = (0, 0),
        flip: bool = True,
        labelled: bool = True,
        cache: bool = False,
        cat_max_ratio: float = 1.0,
        sampler: RareClassCropSampler | None = None,
        keep_labels: bool = False,
    ) -> None:
        """`keep_labels`: read labels of an unlabelled stream too (diagnostics only); crops stay label-blind."""
        if len(dataset) == 0:
            raise DatasetError(f"{dataset.name} {dataset.split} has no images")
        self.dataset, self.crop, self.resize, self.flip = dataset, crop, resize, flip
        self.labelled, self.cat_max_ratio, self.sampler = labelled, cat_max_ratio, sampler
        self.keep_labels = keep_labels
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] | None = {} if cache else None

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        if self.labelled or self.keep_labels:
            image, label = self.dataset[index]
        else:
            image, label = self.dataset.read_image(index), None
        image, label = resize_pair(image, label, self.resize)
        ch, cw = self.crop
        if image.shape[0] < ch or image.shape[1] < cw:
            raise DatasetError(
                f"{self.dataset.samples[index].image} is {image.shape[1]}x{image.shape[0]} after "
                f"resizing, smaller than the {cw}x{ch} crop; lower data.crop or raise the resize"
            )
        if self._cache is not None:
            self._cache[index] = (image, label)
        return image, label

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """One (image BGR crop, label crop or None)."""
        if self.sampler is not None:
            cls, index = self.sampler.sample(rng)
        else:
            cls, index = -1, int(rng.integers(0, len(self.dataset)))
        image, label = self.load(index)
        if not self.labelled:  # unlabelled target: plain random crop (labels kept only for diagnostics)
            ch, cw = self.crop
            y0 = int(rng.integers(0, image.shape[0] - ch + 1))
            x0 = int(rng.integers(0, image.shape[1] - cw + 1))
            img, lab = (
                image[y0 : y0 + ch, x0 : x0 + cw],
                None if label is None else label[y0 : y0 + ch, x0 : x0 + cw],
            )
        else:
            attempts = 10 if cls >= 0 and self.sampler is not None and self.sampler.min_crop_ratio > 0 else 1
            for _ in range(attempts):
                img, lab = random_crop(image, label, self.crop, rng, self.cat_max_ratio)
                if (
                    attempts == 1
                    or int((lab == cls).sum()) > self.sampler.min_pixels * self.sampler.min_crop_ratio
                ):
                    break
        if self.flip and rng.random() < 0.5:
            img = img[:, ::-1]
            lab = None if lab is None else lab[:, ::-1]
        return np.ascontiguousarray(img), None if lab is None else np.ascontiguousarray(lab)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(B,H,W,3) uint8 BGR images and (B,H,W) uint8 labels (None when unlabelled)."""
        items = [self.sample(rng) for _ in range(size)]
        images = np.stack([i for i, _ in items])
        labels = None if not (self.labelled or self.keep_labels) else np.stack([lab for _, lab in items])  # type: ignore[misc]
        return images, labels


def to_tensors(
    images: np.ndarray,
    labels: np.ndarray | None,
    device: str = "cpu",
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
):
    """uint8 BGR (B,H,W,3) -> normalised float RGB (B,3,H,W); labels -> int64 (B,H,W)."""
    import torch

    x = torch.from_numpy(images[..., ::-1].copy()).to(device).permute(0, 3, 1, 2).float()
    x = (x - torch.tensor(mean, device=device).view(1, 3, 1, 1)) / torch.tensor(std, device=device).view(
        1, 3, 1, 1
    )
    y = None if labels is None else torch.from_numpy(labels.astype(np.int64)).to(device)
    return x.contiguous(), y
