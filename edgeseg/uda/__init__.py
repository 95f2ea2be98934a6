"""Unsupervised domain adaptation: DUDA (large EMA teacher + large auxiliary student + small student),
DAFormer/MIC self-training, and the baselines, behind one trainer.

    from edgeseg.uda import load_config, run_distill
    result = run_distill(load_config("synthetic", overrides=["iters=300"]), "runs/x")
    result.report["student"]["target_miou"]

`edgeseg.uda.config` is torch-free; everything else imports torch (lazily resolved here).
"""

from __future__ import annotations

from typing import Any

from edgeseg.uda.config import DistillConfig, load_config, replace_config

__all__ = ["DistillConfig", "DistillResult", "load_config", "replace_config", "run_distill"]


def __getattr__(name: str) -> Any:
    if name in ("run_distill", "DistillResult"):
        from edgeseg.uda import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgeseg.uda' has no attribute {name!r}")
