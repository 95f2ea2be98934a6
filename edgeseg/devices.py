"""Torch device strings checked before any work: an unknown device or CUDA on a CPU build of torch is one
line, not a traceback from the first tensor moved."""

from __future__ import annotations

from edgeseg.errors import ConfigError


def check_device(device: str) -> str:
    """A torch device string that exists here: cpu, cuda, cuda:N (with CUDA torch and enough GPUs), mps."""
    import torch

    text = device.strip().lower()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{device}' needs CUDA, but this PyTorch build or machine has none; use "
                "--device cpu (or install a CUDA build of torch)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{device}': only {torch.cuda.device_count()} CUDA device(s) here")
        return text
    if (
        dev.type == "mps"
        and getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available()
    ):
        return text
    raise ConfigError(f"device '{device}' is not available here; use cpu, cuda or cuda:N")
