"""`merge_checkpoints`: the one entry point behind `edgeseg merge` and `edgeseg merge-export`.

    from edgeseg.merge.api import MergeOptions, merge_checkpoints
    report = merge_checkpoints(["city.safetensors", "night.safetensors"], "merged.safetensors",
                               MergeOptions(method="ties", base="init.safetensors", params={"density": 0.3}))

`method` names a `MergeMethod` in `edgeseg.merge.methods.REGISTRY` (docs/merging.md has the formulas);
`params` are that method's parameters, as names -> values or text (checked against its Params dataclass) or
a Params instance. Integer buffers are never averaged (they must be equal).

Flow: read headers -> validate everything (method parameters, architecture, keys, shapes, dtypes, weights,
integer buffers, base) -> hash inputs for provenance -> stream the merged tensors, one key at a time, into an
atomically renamed file. Nothing is written before validation passes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, ModelMismatchError
from edgeseg.merge.io import (
    MergeInput,
    TensorReader,
    check_integer_buffers,
    normalize_weights,
    open_input,
    open_inputs,
    stream_checkpoint,
)
from edgeseg.merge.methods import REGISTRY, get_method
from edgeseg.merge.methods.base import MergeJob, MergeMethod, Plan
from edgeseg.merge.methods.params import MergeParams
from edgeseg.merge.plan import KeyMerger

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MergeOptions:
    method: str = "bn"
    weights: Sequence[float] | None = None  # one per input; normalised to sum 1 (equal if None)
    base: str | os.PathLike[str] | None = (
        None  # methods with needs_base: the inputs' shared initial checkpoint
    )
    params: Mapping[str, Any] | MergeParams = field(default_factory=dict)  # the method's parameters


@dataclass
class MergeReport:
    out: str
    method: str
    inputs: list[str]
    weights: list[float]
    messages: list[str]
    num_tensors: int
    bn_layers: int
    seconds: float
    anchor: str | None = None
    heads: list[str] | None = None
    layer_anchor_weights: dict[str, float] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_method(options: MergeOptions) -> tuple[MergeMethod, MergeParams]:
    """The method and its checked parameters; also checks that --base is given exactly when it is used."""
    method = get_method(options.method)
    params = method.parse(options.params)
    if method.needs_base and options.base is None:
        raise ConfigError(
            f"--method {method.name} needs --base INIT: the checkpoint all inputs were adapted from"
        )
    if not method.needs_base and options.base is not None:
        users = ", ".join(m.name for m in REGISTRY.values() if m.needs_base)
        raise ConfigError(f"--base does not apply to --method {method.name} (only to {users})")
    return method, params


def _check_base(base: MergeInput, ref: MergeInput) -> None:
    for key, info in base.tensors.items():
        mine = ref.tensors.get(key)
        if mine is not None and (mine.shape != info.shape or mine.dtype != info.dtype):
            raise ModelMismatchError(
                f"base '{base.name}' has tensor '{key}' as {info.shape} {info.dtype} but the "
                f"models have {mine.shape} {mine.dtype}; the base must be their shared "
                "initial checkpoint"
            )
    if not any(k in base.tensors for k in ref.tensors):
        raise ModelMismatchError(
            f"base '{base.name}' shares no tensor with '{ref.name}'; it must be the models' "
            "shared initial checkpoint"
        )


def merge_checkpoints(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: MergeOptions | None = None,
    progress: Progress | None = None,
) -> MergeReport:
    """Merge edgeseg checkpoints into `out` (written atomically); see the module docstring."""
    from edgeseg.merge import bn

    options = options or MergeOptions()
    started = time.perf_counter()
    method, params = resolve_method(options)
    inputs = open_inputs(paths)
    out = Path(out)
    if any(out.resolve() == inp.path.resolve() for inp in inputs):
        raise ConfigError(f"--out '{out}' is one of the inputs; write the merged model to a new file")
    weights, note = normalize_weights(options.weights, len(inputs))
    messages = [note] if note else []

    # ---- validation: nothing is written before all of this passes ----
    layout = method.validate(inputs, params)
    messages += layout.messages
    ref = inputs[layout.ref]
    base = open_input(options.base) if options.base is not None else None
    if base is not None:
        _check_base(base, ref)
    shared = layout.shared if layout.shared is not None else set(ref.tensors)
    check_integer_buffers(inputs, [k for k in ref.tensors if k in shared])

    for inp in inputs + ([base] if base else []):
        _ = inp.sha256  # hash before writing: provenance records exactly what was read
    groups = bn.find_bn_groups(ref.tensors)

    with (
        TensorReader([i.path for i in inputs]) as reader,
        TensorReader([base.path] if base else []) as reader_base,
    ):
        merger = KeyMerger(reader, groups, method.pools_bn)
        job = MergeJob(inputs, weights, params, layout, merger, base, reader_base if base else None)
        plan = method.plan(job)
        messages += plan.messages
        meta = _output_meta(inputs, ref, method, weights, base, plan)
        with stream_checkpoint(out, [(s.out_key, s.info) for s in plan.steps], meta) as writer:
            for i, step in enumerate(plan.steps):
                writer.write(step.out_key, step.compute())
                if progress:
                    progress(i + 1, len(plan.steps))

    return MergeReport(
        out=str(out),
        method=method.name,
        inputs=[str(i.path) for i in inputs],
        weights=weights,
        messages=messages,
        num_tensors=len(plan.steps),
        bn_layers=len({g.prefix for g in groups.values()}),
        seconds=time.perf_counter() - started,
        params=params.to_json(),
        **plan.report,
    )


def _output_meta(
    inputs: Sequence[MergeInput],
    ref: MergeInput,
    method: MergeMethod,
    weights: Sequence[float],
    base: MergeInput | None,
    plan: Plan,
) -> dict[str, Any]:
    meta = {k: v for k, v in ref.meta.items() if k != "provenance"}
    merge: dict[str, Any] = {
        "method": method.name,
        "inputs": [{"file": i.name, "sha256": i.sha256, "arch": i.meta.get("arch")} for i in inputs],
        "weights": list(weights),
        "bn_statistics": "pooled" if method.pools_bn else "averaged",
    }
    if base is not None:
        merge["base"] = {"file": base.name, "sha256": base.sha256}
    merge.update(plan.provenance)
    meta["provenance"] = {"merge": merge, "sources": [i.meta.get("provenance") or {} for i in inputs]}
    meta.update(plan.meta)
    return meta
