"""Task arithmetic and TIES merging relative to the shared initial checkpoint theta_0.

Task vectors tau_i = theta_i - theta_0 (Ilharco et al., ICLR 2023). With weights w_i summing to 1:

    task arithmetic:  theta = theta_0 + scale * sum_i w_i tau_i
                      (scale = 1 is exactly the linear merge; scale > 1 extrapolates along the tasks)
    TIES (Yadav et al., NeurIPS 2023), per tensor:
      1. trim:  keep the `density` fraction of each tau_i with the largest magnitude, zero the rest;
      2. elect: gamma = sign(sum_i w_i trimmed_i) per entry;
      3. disjoint mean: average (weighted by w_i) only the trimmed entries whose sign equals gamma;
      theta = theta_0 + scale * merged.

Trimming is per tensor (as mergekit does), not over the whole flattened model as in the paper: that keeps
merging one tensor at a time, so memory stays bounded. Computation is in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def task_arithmetic(
    base: torch.Tensor, tensors: Sequence[torch.Tensor], weights: Sequence[float], scale: float = 1.0
) -> torch.Tensor:
    b = base.to(torch.float64)
    merged = torch.zeros_like(b)
    for t, w in zip(tensors, weights, strict=True):  # one task vector alive at a time
        merged.add_(t.to(torch.float64) - b, alpha=float(w))
    return (b + scale * merged).to(base.dtype)


def trim_threshold(tau: torch.Tensor, density: float) -> float:
    """The magnitude of the ceil(density * numel)-th largest entry: entries below it are trimmed."""
    if density >= 1.0 or tau.numel() == 0:
        return 0.0
    k = max(1, math.ceil(density * tau.numel()))
    # the k-th largest magnitude = the (numel - k + 1)-th smallest; kthvalue is a selection, not a sort
    return float(torch.kthvalue(tau.abs().reshape(-1), tau.numel() - k + 1).values)


def ties_merge(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float],
    density: float = 0.2,
    scale: float = 1.0,
) -> torch.Tensor:
    """TIES for one tensor. Task vectors are recomputed in each pass rather than kept, so memory is a few
    copies of the tensor whatever the number of models (the inputs are memory-mapped views)."""
    b = base.to(torch.float64)

    def trimmed(i: int, threshold: float) -> torch.Tensor:
        tau = tensors[i].to(torch.float64) - b
        return tau.masked_fill_(tau.abs() < threshold, 0.0) if threshold > 0 else tau

    thresholds = [trim_threshold(tensors[i].to(torch.float64) - b, density) for i in range(len(tensors))]
    elected = torch.zeros_like(b)
    for i, w in enumerate(weights):
        elected.add_(trimmed(i, thresholds[i]), alpha=float(w))
    sign = torch.sign(elected)
    del elected
    num = torch.zeros_like(b)
    den = torch.zeros_like(b)
    for i, w in enumerate(weights):
        tau = trimmed(i, thresholds[i])
        agree = (torch.sign(tau) == sign) & (tau != 0)
        num.add_(tau.masked_fill_(~agree, 0.0), alpha=float(w))
        den.add_(agree.to(torch.float64), alpha=float(w))
    merged = num.div_(den.clamp_min(1e-300)).masked_fill_(den == 0, 0.0)
    return (b + scale * merged).to(base.dtype)
