"""`ties`: TIES-merging of the task vectors relative to the base: trim each to its largest `density` fraction,
elect a sign per entry, average the entries that agree (Yadav et al., NeurIPS 2023; edgeseg.merge.arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from edgeseg.merge.methods.params import MergeParams, param
from edgeseg.merge.methods.task_arithmetic import SCALE_HELP
from edgeseg.merge.methods.task_vectors import TaskVectorMethod


@dataclass(frozen=True)
class TiesParams(MergeParams):
    owner: ClassVar[str] = "ties"
    scale: float = param(1.0, SCALE_HELP, lo=-10, hi=10)
    density: float = param(0.2, "fraction of each task vector kept", lo=0, hi=1, lo_open=True)


class TiesMethod(TaskVectorMethod):
    name = "ties"
    summary = "TIES: trim, elect sign, disjoint mean of the task vectors"
    Params = TiesParams

    def merge_tensor(
        self, key: str, base: Any, tensors: Sequence[Any], weights: Sequence[float], params: TiesParams
    ) -> Any:
        from edgeseg.merge import arithmetic

        return arithmetic.ties_merge(base, tensors, weights, params.density, params.scale)


METHOD = TiesMethod()
