"""A small, visible supervised training loop (the source-only / oracle baselines reuse it).

    history = train_supervised(model, loader, iters=2000, lr=6e-5)

AdamW with the decode head at 10x the learning rate, linear warm-up then polynomial decay (as
DAFormer/SegFormer), cross-entropy with ignore index 255 on logits upsampled to the label size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data.labels import IGNORE_INDEX


def param_groups(model: nn.Module, lr: float, head_lr_mult: float, weight_decay: float) -> list[dict[str, Any]]:
    """Encoder at `lr`, decode head at `lr * head_lr_mult`; no weight decay on norms, biases, pos. embeds."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith("head.")
        no_decay = p.ndim <= 1 or "norm" in name or name.endswith(".bias")
        groups.setdefault((is_head, no_decay), []).append(p)
    return [{"params": params, "lr": lr * (head_lr_mult if is_head else 1.0),
             "weight_decay": 0.0 if no_decay else weight_decay, "lr_mult": head_lr_mult if is_head else 1.0}
            for (is_head, no_decay), params in groups.items()]


def poly_lr(step: int, iters: int, base_lr: float, warmup: int = 0, power: float = 1.0,
            warmup_ratio: float = 1e-6, min_lr: float = 0.0) -> float:
    """Linear warm-up from `warmup_ratio * base_lr`, then (1 - t)^power decay to `min_lr`."""
    if warmup > 0 and step < warmup:
        k = step / warmup
        return base_lr * (warmup_ratio + (1 - warmup_ratio) * k)
    t = min(step, iters) / max(iters, 1)
    return (base_lr - min_lr) * (1 - t) ** power + min_lr


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at label resolution (logits upsampled bilinearly), 255 ignored."""
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def _forever(data: Iterable[Any]) -> Iterator[Any]:
    # Re-iterating a DataLoader starts a new epoch (new shuffle / new augmentation draws).
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training data yielded no batches")


@dataclass
class TrainHistory:
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"iters": len(self.losses), "final_loss": self.losses[-1] if self.losses else None,
                "seconds": round(self.seconds, 1)}


def train_supervised(model: nn.Module, data: Iterable[tuple[torch.Tensor, torch.Tensor]], iters: int,
                     lr: float = 6e-5, head_lr_mult: float = 10.0, weight_decay: float = 0.01,
                     warmup_iters: int | None = None, power: float = 1.0, device: str | torch.device = "cpu",
                     progress: bool = True, description: str = "train", log_every: int = 10) -> TrainHistory:
    """Train `model` in place for `iters` steps on batches `(images, labels)` from `data` (cycled).

    `data` is typically a DataLoader over `TorchSegDataset`. Returns the loss/lr history.
    """
    model.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, lr, head_lr_mult, weight_decay), lr=lr)
    warmup = warmup_iters if warmup_iters is not None else min(1500, iters // 10)
    history = TrainHistory()
    start = time.perf_counter()
    batches = _forever(data)
    bar = _progress(progress, description, iters)
    try:
        for step in range(iters):
            current = poly_lr(step, iters, lr, warmup, power)
            for group in optimizer.param_groups:
                group["lr"] = current * group["lr_mult"]
            images, labels = next(batches)
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = segmentation_loss(model(images), labels)
            if not math.isfinite(loss.item()):  # a sync point, but a NaN run must stop, not go on silently
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.losses.append(float(loss.item()))
            history.lrs.append(current)
            if bar is not None and ((step + 1) % log_every == 0 or step + 1 == iters):
                recent = history.losses[-log_every:]
                bar[0].update(bar[1], completed=step + 1, loss=sum(recent) / len(recent))
    finally:
        if bar is not None:
            bar[0].stop()
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def _progress(enabled: bool, description: str, total: int) -> tuple[Any, Any] | None:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), transient=False)
    task = bar.add_task(description, total=total, loss=float("nan"))
    bar.start()
    return bar, task
