"""`bn`: the weighted mean of the parameters, with BatchNorm statistics pooled as the statistics of the union
of the domains (Li et al., ECCV 2024, Eq. 4/5; edgeseg.merge.bn). The default method.
"""

from __future__ import annotations

from edgeseg.merge.methods.base import MergeJob, MergeMethod, Plan
from edgeseg.merge.plan import plan_uniform


class BNMethod(MergeMethod):
    name = "bn"
    summary = "weighted mean of the parameters + BatchNorm statistics pooled across domains (default)"

    interpolates = True

    def plan(self, job: MergeJob) -> Plan:
        ref = job.ref.tensors
        return Plan(plan_uniform(ref, job.merger, list(ref), job.weights, len(job.inputs)))


METHOD = BNMethod()
