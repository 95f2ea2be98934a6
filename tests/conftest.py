from __future__ import annotations

import shutil

import pytest


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return True  # device side without torch: nvidia-smi is the signal


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (TensorRT/CUDA)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
