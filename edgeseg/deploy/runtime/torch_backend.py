"""The "torch" backend: edgeseg .safetensors checkpoints run by PyTorch. This module imports without
torch; opening a checkpoint imports it (and says how to install it when it is missing)."""

from __future__ import annotations

import os

import numpy as np

from edgeseg.deploy.runtime.backends import get_backend
from edgeseg.deploy.runtime.segmenter import Segmenter, check_batch
from edgeseg.errors import RuntimeBackendError


class TorchSegmenter(Segmenter):
    """An edgeseg .safetensors checkpoint run by PyTorch (CUDA when available). Output: logits."""

    backend = "torch"

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "torch",
        size: tuple[int, int] | None = None,
        device: str | None = None,
    ) -> None:
        try:
            import torch
        except ImportError:
            raise RuntimeBackendError(
                f"the torch backend needs PyTorch: {get_backend(backend).install}"
            ) from None
        from edgeseg.checkpoint import load_model

        self._torch = torch
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._model = load_model(path).to(self._device)
        meta = dict(self._model.meta)
        meta.update(
            num_classes=self._model.num_classes,
            arch=self._model.arch,
            output="logits",
            preprocess=False,
            input_size=None,
        )
        super().__init__(path, meta, None, None, size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, [None, 3, None, None], np.dtype(np.float32), self.path.name)
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(batch).to(self._device)).float().cpu().numpy()

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            self._torch.cuda.synchronize(self._device)

    def close(self) -> None:
        self._model = None
