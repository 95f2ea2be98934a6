"""edgeseg: small semantic segmenters from research to the edge.

Importing the package is cheap and does not import torch: the device side (bench, demo, ONNX and
TensorRT runtimes) must run on images that carry no PyTorch. Torch-backed helpers are resolved lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "load_model", "save_model"]

_LAZY = {
    "save_model": "edgeseg.checkpoint",
    "load_model": "edgeseg.checkpoint",
    "create_model": "edgeseg.models.registry",
    "list_models": "edgeseg.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeseg' has no attribute {name!r}")
