"""Per-domain evaluation of merged and input checkpoints: mIoU per domain and their harmonic mean.

Uses `edgeseg.evaluate` (the project's Cityscapes-exact mIoU). A multi-head checkpoint is evaluated on each
domain with that domain's head; an ordinary segmentor with its single head everywhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError


@dataclass
class ModelScores:
    name: str
    miou: dict[str, float]  # domain -> mIoU in [0, 1]
    harmonic_mean: float

    def to_json(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "name": self.name,
            "miou": {d: clean(v) for d, v in self.miou.items()},
            "harmonic_mean": clean(self.harmonic_mean),
        }


def parse_domains(text: str | Sequence[str] | None) -> list[str]:
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    domains = [d.strip() for d in items if d.strip()]
    if len(set(domains)) != len(domains):
        raise ConfigError(f"domains {domains} repeat")
    return domains


def domain_datasets(
    root: str | os.PathLike[str],
    domains: Sequence[str],
    dataset: str = "synthetic",
    split: str = "val",
    limit: int | None = None,
) -> dict[str, Any]:
    """One labelled dataset per domain (e.g. synthetic/city, acdc/night), optionally its first `limit` images."""
    from edgeseg.data.datasets import SegDataset, load_dataset

    if not domains:
        raise ConfigError("give the domains to evaluate on, e.g. --domains city,night")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    out = {}
    for domain in domains:
        ds = load_dataset(dataset, root, split, domain=domain, with_labels=True)
        if limit is not None:
            ds = SegDataset(ds.spec, ds.root, ds.split, ds.domain, ds.samples[:limit])
        out[domain] = ds
    return out


def _predictor(model: Any, domain: str):
    from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD
    from edgeseg.evaluate import make_predictor, torch_logits_fn
    from edgeseg.merge.multihead import MultiHeadSegmentor

    if isinstance(model, MultiHeadSegmentor):
        model = model.domain_model(domain)
    meta = getattr(model, "meta", {}) or {}
    return make_predictor(
        torch_logits_fn(model), meta.get("mean", IMAGENET_MEAN), meta.get("std", IMAGENET_STD)
    )


def evaluate_model(
    model: Any,
    datasets: dict[str, Any],
    name: str = "model",
    progress: Callable[[int, int], None] | None = None,
) -> ModelScores:
    from edgeseg.evaluate import evaluate_dataset, harmonic_mean

    total = sum(len(ds) for ds in datasets.values())
    done = 0
    miou = {}
    for domain, ds in datasets.items():
        offset = done

        def step(i: int, n: int, offset: int = offset) -> None:
            if progress:
                progress(offset + i, total)

        miou[domain] = evaluate_dataset(_predictor(model, domain), ds, progress=step).miou
        done += len(ds)
    return ModelScores(name, miou, harmonic_mean(miou.values()))


def evaluate_checkpoints(
    paths: Sequence[str | os.PathLike[str]],
    datasets: dict[str, Any],
    progress: Callable[[str, int, int], None] | None = None,
) -> list[ModelScores]:
    """Scores of each checkpoint (segmentor or multi-head) on every domain."""
    from edgeseg.merge.multihead import load_any_model

    results = []
    for path in paths:
        name = Path(path).name

        def step(i: int, n: int, name: str = name) -> None:
            if progress:
                progress(name, i, n)

        results.append(evaluate_model(load_any_model(path), datasets, name, step))
    return results


def scores_table(scores: Sequence[ModelScores], domains: Sequence[str], title: str | None = None):
    """A rich table: one row per model, mIoU (%) per domain and the harmonic mean."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("model")
    for d in domains:
        table.add_column(f"{d} mIoU", justify="right")
    table.add_column("H-mean", justify="right", style="bold")
    for s in scores:
        table.add_row(s.name, *(_pct(s.miou[d]) for d in domains), _pct(s.harmonic_mean))
    return table


def _pct(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{100 * v:.2f}"
