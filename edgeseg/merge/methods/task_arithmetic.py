"""`task-arithmetic`: theta = theta_0 + scale * sum_i w_i (theta_i - theta_0) (Ilharco et al., ICLR 2023;
edgeseg.merge.arithmetic). With scale 1 it is the linear merge; scale > 1 extrapolates along the tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from edgeseg.merge.methods.params import MergeParams, param
from edgeseg.merge.methods.task_vectors import TaskVectorMethod

SCALE_HELP = "scale of the merged task vector"


@dataclass(frozen=True)
class TaskArithmeticParams(MergeParams):
    owner: ClassVar[str] = "task-arithmetic"
    scale: float = param(1.0, SCALE_HELP, lo=-10, hi=10)


class TaskArithmeticMethod(TaskVectorMethod):
    name = "task-arithmetic"
    summary = "base + scale * weighted sum of the task vectors"
    Params = TaskArithmeticParams

    def merge_tensor(
        self,
        key: str,
        base: Any,
        tensors: Sequence[Any],
        weights: Sequence[float],
        params: TaskArithmeticParams,
    ) -> Any:
        from edgeseg.merge import arithmetic

        return arithmetic.task_arithmetic(base, tensors, weights, params.scale)


METHOD = TaskArithmeticMethod()
