"""Linear (weighted-mean) merging of parameters: theta = sum_i w_i theta_i (Li et al., ECCV 2024, Eq. 1/2).

Accumulates in float64 and casts back to the inputs' dtype, so merging identical models returns them
bit for bit and the result does not depend on the order of the inputs beyond float64 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def weighted_mean(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """sum_i w_i t_i for float tensors of one shape; the weights are used as given (callers normalise)."""
    if len(tensors) != len(weights):
        raise ValueError(f"{len(tensors)} tensors but {len(weights)} weights")
    if not tensors:
        raise ValueError("nothing to merge")
    dtype = tensors[0].dtype
    if not dtype.is_floating_point:
        raise ValueError(f"weighted_mean needs float tensors, got {dtype}")
    acc = torch.zeros(tensors[0].shape, dtype=torch.float64)
    for t, w in zip(tensors, weights, strict=True):
        if w:
            acc.add_(t.to(torch.float64), alpha=float(w))
    return acc.to(dtype)
