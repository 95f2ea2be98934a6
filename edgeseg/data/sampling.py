"""Rare-class sampling (DAFormer): per-class pixel statistics of the source set, cached to JSON.

DAFormer samples a class c with probability p_c = softmax((1 - f_c) / T) over the classes present,
where f_c is the class's share of all labelled source pixels, then an image that contains at least
`min_pixels` of that class. A small T (0.01) concentrates sampling on rare classes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.data.labels import NUM_CLASSES
from edgeseg.errors import DatasetError
from edgeseg.io_utils import write_json_atomic

if TYPE_CHECKING:
    from edgeseg.data.datasets import SegDataset

STATS_VERSION = 1


@dataclass(frozen=True)
class ClassStats:
    """Pixel counts per image and class (num_images, num_classes) for one dataset split."""

    dataset: str
    split: str
    frame_ids: tuple[str, ...]
    counts: np.ndarray  # int64 (num_images, num_classes)

    @property
    def totals(self) -> np.ndarray:
        return self.counts.sum(axis=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATS_VERSION,
            "dataset": self.dataset,
            "split": self.split,
            "frame_ids": list(self.frame_ids),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ClassStats:
        return cls(
            obj["dataset"],
            obj["split"],
            tuple(obj["frame_ids"]),
            np.asarray(obj["counts"], dtype=np.int64).reshape(len(obj["frame_ids"]), -1),
        )


def label_counts(label: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Pixels per class in one trainId label (ignore and other values not counted)."""
    return np.bincount(label.ravel(), minlength=256)[:num_classes].astype(np.int64)


def compute_class_stats(
    dataset: SegDataset, progress: Callable[[int, int], None] | None = None
) -> ClassStats:
    counts = np.zeros((len(dataset), NUM_CLASSES), np.int64)
    for i in range(len(dataset)):
        counts[i] = label_counts(dataset.read_label(i))
        if progress:
            progress(i + 1, len(dataset))
    return ClassStats(dataset.name, dataset.split, tuple(s.frame_id for s in dataset.samples), counts)


def load_or_compute_stats(
    dataset: SegDataset, cache: str | Path, progress: Callable[[int, int], None] | None = None
) -> ClassStats:
    """Read the cached statistics if they describe exactly this dataset split, else compute and cache."""
    cache = Path(cache)
    frame_ids = tuple(s.frame_id for s in dataset.samples)
    if cache.is_file():
        try:
            obj = json.loads(cache.read_text())
            stats = ClassStats.from_json(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"class statistics cache {cache} is corrupt ({exc}); delete it to recompute"
            ) from None
        if (
            obj.get("version") == STATS_VERSION
            and stats.frame_ids == frame_ids
            and stats.dataset == dataset.name
        ):
            return stats
    stats = compute_class_stats(dataset, progress)
    write_json_atomic(cache, stats.to_json())
    return stats


def class_frequencies(totals: np.ndarray) -> np.ndarray:
    """Each class's share of all labelled pixels (sums to 1 over the classes present)."""
    total = totals.sum()
    if total == 0:
        raise DatasetError("the source set has no labelled pixels; rare-class sampling needs labels")
    return totals / total


def rcs_probabilities(freq: np.ndarray, temperature: float = 0.01) -> np.ndarray:
    """p_c = softmax((1 - f_c) / T) over the classes with pixels; absent classes get 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    present = freq > 0
    logits = np.where(present, (1.0 - freq) / temperature, -np.inf)
    logits = logits - logits[present].max()  # stable softmax
    p = np.where(present, np.exp(logits), 0.0)
    return p / p.sum()


class RareClassSampler:
    """Draw image indices: first a class by `rcs_probabilities`, then an image rich in that class."""

    def __init__(self, stats: ClassStats, temperature: float = 0.01, min_pixels: int = 3000) -> None:
        # Images count for a class only with >= min_pixels of it (DAFormer: 3000 px at full resolution);
        # a class no image reaches that with falls back to every image that contains it at all.
        self.probs = rcs_probabilities(class_frequencies(stats.totals), temperature)
        self.images: list[np.ndarray] = []
        for c in range(stats.counts.shape[1]):
            rich = np.flatnonzero(stats.counts[:, c] >= min_pixels)
            self.images.append(rich if rich.size else np.flatnonzero(stats.counts[:, c] > 0))
        self.probs = np.where([len(i) > 0 for i in self.images], self.probs, 0.0)
        self.probs = self.probs / self.probs.sum()

    def sample(self, rng: np.random.Generator) -> int:
        c = int(rng.choice(len(self.probs), p=self.probs))
        return int(rng.choice(self.images[c]))
