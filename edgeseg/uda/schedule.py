"""Schedules: learning rate (poly with linear warm-up, as mmcv) and the gradual-distillation ramp.

Learning rate at iteration t (0-based) of N, warm-up W, warm-up ratio r, power p:
    poly(t)  = (1 - t/N)^p * (1 - min_ratio) + min_ratio
    lr(t)    = base * poly(t) * (1 - (1 - t/W) * (1 - r))   for t < W,   base * poly(t) afterwards
Gradual distillation weight lambda(t) on the small student's teacher losses, over the pre-adaptation
iterations N_pre with a ramp of R = ramp_fraction * N_pre iterations, x = min(t / R, 1):
    linear     lambda = s + (1 - s) * x
    cosine     lambda = s + (1 - s) * (1 - cos(pi x)) / 2
    constant   lambda = 1                     (no gradual distillation: the ablation)
    confidence lambda = the teacher's pseudo-label quality on the current target batch (computed in the step)
and lambda = 1 throughout fine-tuning.
"""

from __future__ import annotations

import math


def lr_factor(
    step: int,
    total: int,
    warmup_iters: int = 1500,
    warmup_ratio: float = 1e-6,
    power: float = 1.0,
    min_ratio: float = 0.0,
) -> float:
    poly = (1.0 - min(step, total) / total) ** power * (1.0 - min_ratio) + min_ratio
    if step < warmup_iters:
        k = (1.0 - step / warmup_iters) * (1.0 - warmup_ratio)
        return poly * (1.0 - k)
    return poly


def finetune_start(iters: int, finetune_fraction: float, enabled: bool) -> int:
    """First iteration of the fine-tuning phase (== iters when there is none)."""
    if not enabled or finetune_fraction <= 0:
        return iters
    return max(1, iters - int(round(iters * finetune_fraction)))


def distill_weight(
    step: int, pre_iters: int, schedule: str, ramp_fraction: float, start: float = 0.0
) -> float | None:
    """lambda(t) for the schedules above; None for 'confidence' (the step measures it)."""
    if schedule == "confidence" and step < pre_iters:
        return None
    if schedule == "constant" or step >= pre_iters:
        return 1.0
    ramp = ramp_fraction * pre_iters
    x = 1.0 if ramp <= 0 else min(step / ramp, 1.0)
    if schedule == "linear":
        return start + (1.0 - start) * x
    if schedule == "cosine":
        return start + (1.0 - start) * (1.0 - math.cos(math.pi * x)) / 2.0
    raise ValueError(f"unknown gradual-distillation schedule {schedule!r}")
