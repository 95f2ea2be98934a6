"""The common half of the methods that merge task vectors tau_i = theta_i - theta_0 relative to `--base`
(task arithmetic, TIES, DARE): which keys they apply to, and what they record.

A float tensor that is in the base is merged by the method's `merge_tensor`; BatchNorm statistics, counters
and integer buffers follow the default rule (pooled / summed / copied); a float tensor missing from the base
(e.g. a head when the base is an encoder) falls back to the weighted mean, with a note.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from edgeseg.merge.methods.base import MergeJob, MergeMethod, Plan
from edgeseg.merge.plan import Step


class TaskVectorMethod(MergeMethod):
    needs_base = True

    @abstractmethod
    def merge_tensor(
        self, key: str, base: Any, tensors: Sequence[Any], weights: Sequence[float], params: Any
    ) -> Any:
        """theta_0 and the inputs' tensors for `key` (torch, one dtype) -> the merged tensor."""

    def plan(self, job: MergeJob) -> Plan:
        assert job.base is not None and job.base_reader is not None
        idx = list(range(len(job.inputs)))
        merger, base, base_reader = job.merger, job.base, job.base_reader
        fallback: list[str] = []
        steps = []
        for key, info in job.ref.tensors.items():
            plain = key in merger.groups or not info.is_float
            if plain or key not in base.tensors:
                if not plain:
                    fallback.append(key)
                steps.append(Step(key, info, lambda k=key: merger.merge(k, job.weights, idx)))
                continue

            def compute(k: str = key) -> Any:
                return self.merge_tensor(
                    k, base_reader.read(0, k), merger.reader.read_all(k, idx), job.weights, job.params
                )

            steps.append(Step(key, info, compute))
        plan = Plan(steps, provenance=job.params.to_json())
        if fallback:
            plan.messages.append(
                f"{len(fallback)} float tensors (e.g. '{fallback[0]}') are not in the base "
                "checkpoint: merged as a weighted mean"
            )
            plan.provenance["linear_fallback_tensors"] = len(fallback)
        return plan
