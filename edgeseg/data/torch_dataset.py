"""torch adapters for the (torch-free) dataset readers: a `Dataset` and a rare-class `Sampler`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from edgeseg.data.datasets import SegDataset
from edgeseg.data.sampling import RareClassSampler
from edgeseg.errors import DatasetError

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


class TorchSegDataset(Dataset):
    """`ds[i] -> (float32 3xHxW normalised RGB tensor, int64 HxW label tensor)`.

    Randomness per item is drawn from torch's generator, so `torch.manual_seed` (and DataLoader worker
    seeding) makes augmentation reproducible. Unlabelled splits yield an all-ignore label.
    """

    def __init__(self, dataset: SegDataset, transform: Transform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        rng = np.random.default_rng([seed, index])
        image, label = self.dataset[index]
        if label is None:
            label = np.full(image.shape[:2], 255, np.uint8)
        x, y = self.transform(image, label, rng)
        return torch.from_numpy(x), torch.from_numpy(y)


class RareClassTorchSampler(Sampler[int]):
    """Endless (or `num_samples`-long) stream of indices drawn by DAFormer's rare-class sampling."""

    def __init__(self, sampler: RareClassSampler, num_samples: int, seed: int = 0) -> None:
        if num_samples <= 0:
            raise DatasetError("rare-class sampling needs num_samples > 0")
        self.sampler, self.num_samples, self.seed = sampler, num_samples, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        for _ in range(self.num_samples):
            yield self.sampler.sample(rng)
