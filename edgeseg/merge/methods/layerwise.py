"""`layerwise`: per-layer weights, uniform in early layers and ramping towards one *anchor* input with depth
(Alcover-Couso et al.; the schedule is edgeseg.merge.layerwise). Models of different architectures that share
one backbone merge their encoders; everything else comes from the anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from edgeseg.errors import ConfigError, ModelMismatchError
from edgeseg.merge import layerwise
from edgeseg.merge.io import MergeInput, check_compatible, check_same_keys
from edgeseg.merge.methods.base import Layout, MergeJob, MergeMethod, Plan
from edgeseg.merge.methods.params import MergeParams, param
from edgeseg.merge.plan import Step
from edgeseg.models.layout import part

_ARCH_FIELDS = ("arch", "num_classes", "kind", "arch_overrides")


@dataclass(frozen=True)
class LayerwiseParams(MergeParams):
    owner: ClassVar[str] = "layerwise"
    anchor: str | None = param(
        None, "the input the deep layers follow: path, file name or 0-based index (default: the first input)"
    )
    ramp_start: float = param(0.5, "normalised depth where the anchor's weight starts to grow", lo=0, hi=1)
    ramp_shape: Literal["linear", "cosine", "step"] = param("linear", "how the anchor's weight grows")
    anchor_final: float = param(1.0, "the anchor's weight at the last layer", lo=0, hi=1)

    @property
    def schedule(self) -> layerwise.LayerwiseSchedule:
        return layerwise.LayerwiseSchedule(self.ramp_start, self.ramp_shape, self.anchor_final)


def resolve_anchor(inputs: Sequence[MergeInput], anchor: int | str | None) -> int:
    """Index of the anchor input from an index, a path or a file name (default: the first input)."""
    if anchor is None:
        return 0
    if isinstance(anchor, int) or (
        isinstance(anchor, str) and anchor.isdigit() and not Path(anchor).exists()
    ):
        index = int(anchor)
        if not 0 <= index < len(inputs):
            raise ConfigError(f"anchor index {index} is out of range for {len(inputs)} inputs")
        return index
    target = Path(anchor)
    for i, inp in enumerate(inputs):
        if target.exists() and target.resolve() == inp.path.resolve():
            return i
    matches = [i for i, inp in enumerate(inputs) if anchor in (inp.name, inp.path.stem)]
    if len(matches) == 1:
        return matches[0]
    raise ConfigError(
        f"anchor '{anchor}' is not one of the inputs ({', '.join(i.name for i in inputs)}); "
        "pass one of their paths"
    )


class LayerwiseMethod(MergeMethod):
    name = "layerwise"
    summary = "per-layer weights: uniform early, ramping towards an anchor input with depth"
    Params = LayerwiseParams

    def validate(self, inputs: Sequence[MergeInput], params: LayerwiseParams) -> Layout:
        anchor = resolve_anchor(inputs, params.anchor)
        ref = inputs[anchor]
        if not any(inp.meta.get(f) != ref.meta.get(f) for inp in inputs for f in _ARCH_FIELDS):
            check_compatible(inputs, same_arch=True)
            return Layout(ref=anchor)
        check_compatible(inputs, same_arch=False)
        shared = {k for k in ref.tensors if part(k) == "encoder"}
        if not shared:
            raise ModelMismatchError(f"anchor '{ref.name}' has no encoder tensors to share")
        for inp in inputs:
            check_same_keys(
                ref,
                inp,
                sorted(shared, key=list(ref.tensors).index),
                hint="layer-wise merging across architectures needs one shared backbone",
            )
        message = (
            f"architectures differ: merging the shared encoder ({len(shared)} tensors); "
            f"the rest comes from the anchor '{ref.name}' ({ref.meta.get('arch')})"
        )
        return Layout(ref=anchor, shared=frozenset(shared), messages=[message])

    def plan(self, job: MergeJob) -> Plan:
        anchor, ref, schedule = job.layout.ref, job.ref.tensors, job.params.schedule
        depth = layerwise.depth_positions(ref)
        idx = list(range(len(job.inputs)))
        steps, report = [], {}
        for key, info in ref.items():
            if key in job.shared:
                w = layerwise.layer_weights(schedule, job.weights, anchor, depth[key])
                steps.append(Step(key, info, lambda k=key, w=w: job.merger.merge(k, w, idx)))
                report[layerwise.layer_name(key)] = (depth[key], w[anchor])
            else:  # not shared by every architecture: the anchor's own (its head)
                steps.append(Step(key, info, lambda k=key: job.merger.copy(anchor, k)))
                report[layerwise.layer_name(key)] = (depth[key], 1.0)
        by_depth = {name: a for name, (_, a) in sorted(report.items(), key=lambda item: item[1][0])}
        return Plan(
            steps,
            provenance={"anchor": job.ref.name, "schedule": schedule.to_json()},
            report={"anchor": str(job.ref.path), "layer_anchor_weights": by_depth},
        )


METHOD = LayerwiseMethod()
