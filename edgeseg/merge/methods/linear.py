"""`linear`: the weighted mean of every float tensor, BatchNorm running statistics included (plain average).

theta = sum_i w_i theta_i                      (Li et al., ECCV 2024, Eq. 1/2; edgeseg.merge.linear)
"""

from __future__ import annotations

from edgeseg.merge.methods.base import MergeJob, MergeMethod, Plan
from edgeseg.merge.plan import plan_uniform


class LinearMethod(MergeMethod):
    name = "linear"
    summary = "weighted mean of every float tensor, BatchNorm statistics averaged too"
    pools_bn = False

    interpolates = True

    def plan(self, job: MergeJob) -> Plan:
        ref = job.ref.tensors
        return Plan(plan_uniform(ref, job.merger, list(ref), job.weights, len(job.inputs)))


METHOD = LinearMethod()
