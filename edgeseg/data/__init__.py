"""Datasets, labels, transforms and the procedural multi-domain benchmark (torch-free)."""

from edgeseg.data.datasets import DATASETS, SegDataset, list_datasets, load_dataset
from edgeseg.data.labels import CLASSES, IGNORE_INDEX, NUM_CLASSES, PALETTE

__all__ = [
    "CLASSES",
    "DATASETS",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "PALETTE",
    "SegDataset",
    "list_datasets",
    "load_dataset",
]
