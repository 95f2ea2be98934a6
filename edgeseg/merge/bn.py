"""BatchNorm statistics merging (Li et al., ECCV 2024, Eq. 4/5).

Each model's running mean/variance summarise the activations of its own domain. Treating every BN layer's
input as drawn from one Gaussian per domain, the statistics of their union are the pooled moments, with
n_i = num_batches_tracked as the amount of data behind each estimate:

    n   = sum_i n_i
    mu  = (1/n) sum_i n_i mu_i
    var = (1/n) sum_i n_i (var_i + (mu_i - mu)^2)
    num_batches_tracked = n

With user weights w_i (e.g. the layer-wise schedule) the pooling weights become pi_i ∝ w_i n_i, which is
exactly Eq. 5 for equal weights. If no input has tracked any batch (n_i = 0 for all) the weights alone are
used, so a never-trained BN layer still merges to something sensible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BNKeys:
    """The running-statistics keys of one BatchNorm layer (the affine weight/bias are ordinary params)."""

    prefix: str
    mean: str
    var: str
    count: str | None  # num_batches_tracked, absent when the layer was built without it

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.mean, self.var) + ((self.count,) if self.count else ())


def find_bn_groups(keys: Iterable[str]) -> dict[str, BNKeys]:
    """Map each statistics key (running_mean, running_var, num_batches_tracked) to its BN layer."""
    keyset = set(keys)
    groups: dict[str, BNKeys] = {}
    for key in keyset:
        if not key.endswith("running_mean"):
            continue
        prefix = key[: -len("running_mean")]
        var = prefix + "running_var"
        if var not in keyset:
            continue
        count = prefix + "num_batches_tracked"
        group = BNKeys(prefix, key, var, count if count in keyset else None)
        for k in group.keys:
            groups[k] = group
    return groups


def pooling_weights(counts: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """pi_i ∝ w_i n_i, normalised; falls back to w_i when every input tracked zero batches."""
    w = list(weights) if weights is not None else [1.0] * len(counts)
    raw = [wi * max(float(n), 0.0) for wi, n in zip(w, counts, strict=True)]
    total = sum(raw)
    if total <= 0:
        raw, total = w, sum(w)
    return [r / total for r in raw]


def merge_bn_statistics(
    means: Sequence[torch.Tensor],
    variances: Sequence[torch.Tensor],
    counts: Sequence[int],
    weights: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Pooled (mean, variance, total count) of several BN layers' running statistics (Eq. 5)."""
    if not (len(means) == len(variances) == len(counts)):
        raise ValueError("means, variances and counts must have one entry per model")
    pi = pooling_weights(counts, weights)
    dtype = means[0].dtype
    mu = torch.zeros(means[0].shape, dtype=torch.float64)
    for p, m in zip(pi, means, strict=True):
        mu.add_(m.to(torch.float64), alpha=p)
    var = torch.zeros_like(mu)
    for p, m, v in zip(pi, means, variances, strict=True):
        var.add_(v.to(torch.float64) + (m.to(torch.float64) - mu) ** 2, alpha=p)
    return mu.to(dtype), var.to(variances[0].dtype), int(sum(int(n) for n in counts))
