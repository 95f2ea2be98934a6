"""Shared helpers for the UDA/distill tests: a tiny rendered synthetic benchmark and tiny configs."""

from __future__ import annotations

from pathlib import Path

from edgeseg.uda.config import DistillConfig, load_config


def render_tiny(root: Path) -> Path:
    """source + city, 6 train / 2 val images of 64x128 (a fraction of a second)."""
    from edgeseg.data.synthetic import render_dataset

    if not (root / "synthetic.json").is_file():
        render_dataset(root, ["source", "city"], size=(64, 128), seed=0, splits={"train": 6, "val": 2})
    return root


def tiny_config(data_root: Path, *overrides: str) -> DistillConfig:
    base = [
        f"data.source_root={data_root}",
        f"data.target_root={data_root}",
        "data.crop=[64, 128]",
        "data.batch_size=2",
        "data.rcs_min_pixels=20",
        "synthetic.size=[64, 128]",
        "models.large=segformer_tiny",
        "models.small=segformer_tiny",
        'models.large_init=""',
        'models.small_init=""',
        "iters=4",
        "optim.warmup_iters=2",
        "train.progress=false",
        "train.source_only_baseline=false",
        "train.threads=1",
        "duda.inconsistency.images=2",
        "uda.loss_resolution=logits",
    ]
    return load_config("synthetic", overrides=base + list(overrides))
