"""`backbone`: the encoders merged (BatchNorm statistics pooled), every input keeps its own decode head ->
one multi-head checkpoint (Li et al., ECCV 2024, Tab. 1 rows with a dagger; edgeseg.merge.multihead).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from edgeseg.errors import ConfigError, ModelMismatchError
from edgeseg.merge.io import MergeInput, check_compatible
from edgeseg.merge.methods.base import Layout, MergeJob, MergeMethod, Plan
from edgeseg.merge.methods.params import MergeParams, param
from edgeseg.merge.plan import Step, plan_uniform
from edgeseg.models.layout import part


@dataclass(frozen=True)
class BackboneParams(MergeParams):
    owner: ClassVar[str] = "backbone"
    heads: tuple[str, ...] | None = param(
        None,
        "head names, one per input, e.g. city,night (default: each "
        "input's domain from its metadata, else its file name)",
    )


def default_domain_names(inputs: Sequence[MergeInput]) -> list[str]:
    names = []
    for inp in inputs:
        prov = inp.meta.get("provenance") or {}
        name = inp.meta.get("domain") or prov.get("target_domain") or prov.get("domain") or inp.path.stem
        names.append(re.sub(r"[^A-Za-z0-9_-]", "_", str(name)))
    return names


class BackboneMethod(MergeMethod):
    name = "backbone"
    summary = "merged encoder + every input's own head -> a multi-head checkpoint"
    Params = BackboneParams

    def validate(self, inputs: Sequence[MergeInput], params: BackboneParams) -> Layout:
        from edgeseg.merge.multihead import validate_domain_names

        check_compatible(inputs, same_arch=True)
        ref = inputs[0]
        if ref.meta.get("kind") != "segmentor":
            raise ModelMismatchError(
                f"'{ref.name}' is a {ref.meta.get('kind')} checkpoint; backbone-only merging "
                "needs segmentors (encoder + head)"
            )
        heads = validate_domain_names(params.heads or default_domain_names(inputs))
        if len(heads) != len(inputs):
            raise ConfigError(f"{len(heads)} head names for {len(inputs)} models; give one per model")
        other = [k for k in ref.tensors if part(k) == "other"]
        if other:
            raise ModelMismatchError(
                f"tensor '{other[0]}' is neither encoder nor head; backbone-only merging "
                "needs a segmentor (encoder.* + head.*)"
            )
        return Layout(resolved={"heads": heads})

    def plan(self, job: MergeJob) -> Plan:
        from edgeseg.merge.multihead import MULTIHEAD_KIND, head_key

        ref, heads = job.ref.tensors, job.layout.resolved["heads"]
        encoder = [k for k in ref if part(k) == "encoder"]
        steps = plan_uniform(ref, job.merger, encoder, job.weights, len(job.inputs))
        for i, domain in enumerate(heads):
            for k in (k for k in ref if part(k) == "head"):
                steps.append(Step(head_key(domain, k), ref[k], lambda i=i, k=k: job.merger.copy(i, k)))
        return Plan(steps, meta={"kind": MULTIHEAD_KIND, "heads": list(heads)}, report={"heads": list(heads)})


METHOD = BackboneMethod()
