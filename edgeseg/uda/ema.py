"""Exponential moving average (mean-teacher) weights, as in DAFormer/MIC.

After the student's k-th optimizer step (k >= 1) the teacher moves by
    alpha_k = min(1 - 1/(k + 1), alpha_max),        theta_T <- alpha_k * theta_T + (1 - alpha_k) * theta_S
so early on the teacher is a plain average of the student's iterates and later a slow EMA.
Unlike DAFormer's `_update_ema` (parameters only), floating-point buffers - BatchNorm running mean and
variance - follow the same EMA, so an eval-mode teacher normalises with statistics that belong to its
own weights; integer buffers (`num_batches_tracked`) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_alpha(num_updates: int, alpha_max: float = 0.999) -> float:
    """alpha after the student's `num_updates`-th step: min(1 - 1/(k+1), alpha_max)."""
    if num_updates < 0:
        raise ValueError("num_updates must be >= 0")
    return min(1.0 - 1.0 / (num_updates + 1), alpha_max)


def unwrap(module: nn.Module) -> nn.Module:
    """The underlying module of a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") and isinstance(module.module, nn.Module) else module


def make_ema_copy(model: nn.Module) -> nn.Module:
    """A frozen deep copy of `model` (k = 0: the teacher starts as the student)."""
    teacher = copy.deepcopy(unwrap(model))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """In place: teacher <- alpha * teacher + (1 - alpha) * student, parameters and float buffers."""
    student = unwrap(student)
    t_params = dict(teacher.named_parameters())
    for name, s in student.named_parameters():
        t_params[name].mul_(alpha).add_(s.detach().to(t_params[name].dtype), alpha=1.0 - alpha)
    t_buffers = dict(teacher.named_buffers())
    for name, s in student.named_buffers():
        t = t_buffers[name]
        if t.dtype.is_floating_point:
            t.mul_(alpha).add_(s.to(t.dtype), alpha=1.0 - alpha)
        else:
            t.copy_(s)
