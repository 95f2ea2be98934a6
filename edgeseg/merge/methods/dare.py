"""`dare`: drop-and-rescale task vectors (Yu et al., "Language Models are Super Mario", ICML 2024), then
task arithmetic onto the base:

    tau_i   = theta_i - theta_0
    tau_i'  = m_i * tau_i / (1 - drop),   m_i ~ Bernoulli(1 - drop) per entry   (E[tau_i'] = tau_i)
    theta   = theta_0 + scale * sum_i w_i tau_i'

The masks are seeded per (seed, input index, tensor name), so a merge is reproducible and does not depend on
the order tensors are processed in. drop = 0 is exactly task arithmetic. Computation is in float64.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from edgeseg.merge.methods.params import MergeParams, param
from edgeseg.merge.methods.task_arithmetic import SCALE_HELP
from edgeseg.merge.methods.task_vectors import TaskVectorMethod


@dataclass(frozen=True)
class DareParams(MergeParams):
    owner: ClassVar[str] = "dare"
    drop: float = param(
        0.5,
        "probability of dropping each task-vector entry; kept ones are scaled by 1/(1-drop)",
        lo=0,
        hi=1,
        hi_open=True,
    )
    seed: int = param(0, "seed of the drop masks", lo=0, hi=2**32 - 1)
    scale: float = param(1.0, SCALE_HELP, lo=-10, hi=10)


def mask_seed(seed: int, index: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # torch seeds are < 2**63 here


def dare_merge(
    base: Any,
    tensors: Sequence[Any],
    weights: Sequence[float],
    drop: float,
    scale: float,
    seeds: Sequence[int],
) -> Any:
    """DARE for one tensor; `seeds[i]` seeds input i's drop mask."""
    import torch

    b = base.to(torch.float64)
    merged = torch.zeros_like(b)
    for t, w, seed in zip(tensors, weights, seeds, strict=True):  # one task vector alive at a time
        tau = t.to(torch.float64) - b
        if drop > 0:
            keep = (
                torch.rand(tau.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                >= drop
            )
            tau = tau.mul_(keep).div_(1.0 - drop)
        merged.add_(tau, alpha=float(w))
    return (b + scale * merged).to(base.dtype)


class DareMethod(TaskVectorMethod):
    name = "dare"
    summary = "DARE: drop task-vector entries at random, rescale the rest, add their weighted sum to the base"
    Params = DareParams

    def merge_tensor(
        self, key: str, base: Any, tensors: Sequence[Any], weights: Sequence[float], params: DareParams
    ) -> Any:
        seeds = [mask_seed(params.seed, i, key) for i in range(len(tensors))]
        return dare_merge(base, tensors, weights, params.drop, params.scale, seeds)


METHOD = DareMethod()
