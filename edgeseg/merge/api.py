"""`merge_checkpoints`: the one entry point behind `edgeseg merge`.

    from edgeseg.merge.api import MergeOptions, merge_checkpoints
    report = merge_checkpoints(["city.safetensors", "night.safetensors"], "merged.safetensors",
                               MergeOptions(method="bn"))

Methods (docs/merging.md has the formulas):
    linear           weighted mean of every float tensor, BN running stats included (plain average)
    bn               weighted mean of parameters + BatchNorm statistics pooled per Eq. 5 of Li et al.
    layerwise        per-layer weights: uniform early, ramping towards an anchor model with depth
    backbone         merged encoder + every input's own head -> a multi-head checkpoint
    task-arithmetic  base + scale * sum_i w_i (theta_i - base)              (needs --base)
    ties             TIES-merging of the task vectors relative to base       (needs --base)
All but `linear` pool BatchNorm statistics; integer buffers are never averaged (they must be equal).

Flow: read headers -> validate everything (architecture, keys, shapes, dtypes, weights, integer buffers,
base) -> hash inputs for provenance -> stream the merged tensors, one key at a time, into an atomically
renamed file. Nothing is written before validation passes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, ModelMismatchError
from edgeseg.merge import arithmetic, bn, layerwise, linear
from edgeseg.merge.io import (
    MergeInput,
    TensorInfo,
    TensorReader,
    check_compatible,
    check_integer_buffers,
    check_same_keys,
    is_counter,
    normalize_weights,
    open_input,
    open_inputs,
    stream_checkpoint,
)
from edgeseg.merge.multihead import MULTIHEAD_KIND, head_key, validate_domain_names

METHODS = ("linear", "bn", "layerwise", "backbone", "task-arithmetic", "ties")
# Methods whose result does not depend on the order of the inputs (given weights in the same order).
SYMMETRIC_METHODS = ("linear", "bn", "task-arithmetic", "ties")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MergeOptions:
    method: str = "bn"
    weights: Sequence[float] | None = None  # one per input; normalised to sum 1 (equal if None)
    anchor: int | str | None = None  # layerwise: index, path or file name of one input (default: first)
    base: str | os.PathLike[str] | None = None  # task-arithmetic / ties: the shared initial checkpoint
    schedule: layerwise.LayerwiseSchedule = field(default_factory=layerwise.LayerwiseSchedule)
    density: float = 0.2  # ties: fraction of each task vector kept
    scale: float = 1.0  # task-arithmetic / ties: scale of the merged task vector
    domains: Sequence[str] | None = None  # backbone: one head name per input (default: metadata/file stem)


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

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Step:
    out_key: str
    info: TensorInfo
    compute: Callable[[], Any]


class _KeyMerger:
    """Merges one key across inputs; BatchNorm groups are pooled together and cached until emitted."""

    def __init__(self, reader: TensorReader, groups: dict[str, bn.BNKeys], pooled: bool) -> None:
        self.reader, self.groups, self.pooled = reader, groups, pooled
        self._bn_cache: dict[str, tuple[Any, Any, int]] = {}  # prefix -> pooled (mean, var, count)
        self._bn_left: dict[str, int] = {}  # prefix -> statistics keys not yet emitted

    def copy(self, index: int, key: str):
        return self.reader.read(index, key)

    def merge(self, key: str, weights: Sequence[float], indices: Sequence[int]):
        """The default rule: BN stats pooled (or averaged), counters summed, ints copied, floats averaged."""
        group = self.groups.get(key)
        if group is not None and self.pooled:
            return self._pooled(group, key, weights, indices)
        if is_counter(key):
            import torch

            total = sum(int(t.item()) for t in self.reader.read_all(key, indices))
            return torch.tensor(total, dtype=self.reader.read(indices[0], key).dtype)
        first = self.reader.read(indices[0], key)
        if not first.dtype.is_floating_point:
            return first  # equal in every input: checked before writing
        return linear.weighted_mean([first] + self.reader.read_all(key, indices[1:]), weights)

    def _pooled(self, group: bn.BNKeys, key: str, weights: Sequence[float], indices: Sequence[int]):
        import torch

        cached = self._bn_cache.get(group.prefix)
        if cached is None:
            means = self.reader.read_all(group.mean, indices)
            variances = self.reader.read_all(group.var, indices)
            counts = ([int(t.item()) for t in self.reader.read_all(group.count, indices)]
                      if group.count else [1] * len(indices))
            cached = bn.merge_bn_statistics(means, variances, counts, weights)
            self._bn_cache[group.prefix] = cached
            self._bn_left[group.prefix] = len(group.keys)
        mean, var, count = cached
        if key == group.mean:
            out = mean
        elif key == group.var:
            out = var
        else:
            out = torch.tensor(count, dtype=self.reader.read(indices[0], key).dtype)
        self._bn_left[group.prefix] -= 1
        if not self._bn_left[group.prefix]:  # all three written: drop the cached statistics
            del self._bn_cache[group.prefix], self._bn_left[group.prefix]
        return out


def resolve_anchor(inputs: Sequence[MergeInput], anchor: int | str | None) -> int:
    """Index of the anchor input from an index, a path or a file name (default: the first input)."""
    if anchor is None:
        return 0
    if isinstance(anchor, int) or (isinstance(anchor, str) and anchor.isdigit() and not Path(anchor).exists()):
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
    raise ConfigError(f"anchor '{anchor}' is not one of the inputs ({', '.join(i.name for i in inputs)}); "
                      "pass one of their paths")


def default_domain_names(inputs: Sequence[MergeInput]) -> list[str]:
    names = []
    for inp in inputs:
        prov = inp.meta.get("provenance") or {}
        name = inp.meta.get("domain") or prov.get("target_domain") or prov.get("domain") or inp.path.stem
        names.append(re.sub(r"[^A-Za-z0-9_-]", "_", str(name)))
    return names


def _plan_uniform(inputs: Sequence[MergeInput], merger: _KeyMerger, keys: Sequence[str],
                  weights: Sequence[float]) -> list[_Step]:
    idx = list(range(len(inputs)))
    ref = inputs[0].tensors
    return [_Step(k, ref[k], lambda k=k: merger.merge(k, weights, idx)) for k in keys]


def _plan_layerwise(inputs: Sequence[MergeInput], merger: _KeyMerger, anchor: int, weights: Sequence[float],
                    schedule: layerwise.LayerwiseSchedule, shared: set[str]
                    ) -> tuple[list[_Step], dict[str, float]]:
    ref = inputs[anchor].tensors
    depth = layerwise.depth_positions(ref)
    idx = list(range(len(inputs)))
    steps, report = [], {}
    for key, info in ref.items():
        if key in shared:
            w = layerwise.layer_weights(schedule, weights, anchor, depth[key])
            steps.append(_Step(key, info, lambda k=key, w=w: merger.merge(k, w, idx)))
            report[layerwise.layer_name(key)] = (depth[key], w[anchor])
        else:  # not shared by every architecture: the anchor's own (its head)
            steps.append(_Step(key, info, lambda k=key: merger.copy(anchor, k)))
            report[layerwise.layer_name(key)] = (depth[key], 1.0)
    return steps, {name: a for name, (_, a) in sorted(report.items(), key=lambda item: item[1][0])}


def _plan_backbone(inputs: Sequence[MergeInput], merger: _KeyMerger, weights: Sequence[float],
                   domains: Sequence[str]) -> list[_Step]:
    ref = inputs[0].tensors
    other = [k for k in ref if not (k.startswith("encoder.") or k.startswith("head."))]
    if other:
        raise ModelMismatchError(f"tensor '{other[0]}' is neither encoder nor head; backbone-only merging "
                                 "needs a segmentor (encoder.* + head.*)")
    encoder = [k for k in ref if k.startswith("encoder.")]
    steps = _plan_uniform(inputs, merger, encoder, weights)
    for i, domain in enumerate(domains):
        for k in (k for k in ref if k.startswith("head.")):
            steps.append(_Step(head_key(domain, k), ref[k], lambda i=i, k=k: merger.copy(i, k)))
    return steps


def _plan_arithmetic(inputs: Sequence[MergeInput], merger: _KeyMerger, reader_base: TensorReader,
                     base: MergeInput, weights: Sequence[float], options: MergeOptions
                     ) -> tuple[list[_Step], list[str]]:
    ref = inputs[0].tensors
    idx = list(range(len(inputs)))
    fallback: list[str] = []
    steps = []
    for key, info in ref.items():
        plain = key in merger.groups or not info.is_float
        if plain or key not in base.tensors:
            if not plain:
                fallback.append(key)
            steps.append(_Step(key, info, lambda k=key: merger.merge(k, weights, idx)))
            continue

        def compute(k: str = key):
            tensors = merger.reader.read_all(k, idx)
            theta0 = reader_base.read(0, k)
            if options.method == "ties":
                return arithmetic.ties_merge(theta0, tensors, weights, options.density, options.scale)
            return arithmetic.task_arithmetic(theta0, tensors, weights, options.scale)

        steps.append(_Step(key, info, compute))
    return steps, fallback


def _check_base(base: MergeInput, ref: MergeInput) -> None:
    for key, info in base.tensors.items():
        mine = ref.tensors.get(key)
        if mine is not None and (mine.shape != info.shape or mine.dtype != info.dtype):
            raise ModelMismatchError(f"base '{base.name}' has tensor '{key}' as {info.shape} {info.dtype} but the "
                                     f"models have {mine.shape} {mine.dtype}; the base must be their shared "
                                     "initial checkpoint")
    if not any(k in base.tensors for k in ref.tensors):
        raise ModelMismatchError(f"base '{base.name}' shares no tensor with '{ref.name}'; it must be the models' "
                                 "shared initial checkpoint")


def _check_options_apply(options: MergeOptions) -> None:
    """An option the chosen method would ignore is a user error, not a silent no-op."""
    method = options.method
    defaults = MergeOptions()
    misplaced = [
        ("--anchor", options.anchor is not None, ("layerwise",)),
        ("--ramp-start/--ramp-shape/--anchor-final", options.schedule != defaults.schedule, ("layerwise",)),
        ("--base", options.base is not None, ("task-arithmetic", "ties")),
        ("--scale", options.scale != defaults.scale, ("task-arithmetic", "ties")),
        ("--density", options.density != defaults.density, ("ties",)),
        ("--heads", options.domains is not None, ("backbone",)),
    ]
    for flag, given, methods in misplaced:
        if given and method not in methods:
            raise ConfigError(f"{flag} does not apply to --method {method} (only to {', '.join(methods)})")


def merge_checkpoints(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                      options: MergeOptions | None = None, progress: Progress | None = None) -> MergeReport:
    """Merge edgeseg checkpoints into `out` (written atomically); see the module docstring."""
    options = options or MergeOptions()
    started = time.perf_counter()
    if options.method not in METHODS:
        raise ConfigError(f"unknown merge method '{options.method}'; choose one of: {', '.join(METHODS)}")
    _check_options_apply(options)
    inputs = open_inputs(paths)
    out = Path(out)
    if any(out.resolve() == inp.path.resolve() for inp in inputs):
        raise ConfigError(f"--out '{out}' is one of the inputs; write the merged model to a new file")
    weights, note = normalize_weights(options.weights, len(inputs))
    messages = [note] if note else []
    method = options.method
    anchor = resolve_anchor(inputs, options.anchor) if method == "layerwise" else None
    ref = inputs[anchor or 0]

    # ---- validation: nothing is written before all of this passes ----
    shared: set[str] = set(ref.tensors)
    cross_arch = False
    if method == "layerwise":
        cross_arch = any(inp.meta.get(f) != ref.meta.get(f) for inp in inputs
                         for f in ("arch", "num_classes", "kind", "arch_overrides"))
    if cross_arch:
        check_compatible(inputs, same_arch=False)
        shared = {k for k in ref.tensors if k.startswith("encoder.")}
        if not shared:
            raise ModelMismatchError(f"anchor '{ref.name}' has no encoder tensors to share")
        for inp in inputs:
            check_same_keys(ref, inp, sorted(shared, key=list(ref.tensors).index),
                            hint="layer-wise merging across architectures needs one shared backbone")
        messages.append(f"architectures differ: merging the shared encoder ({len(shared)} tensors); "
                        f"the rest comes from the anchor '{ref.name}' ({ref.meta.get('arch')})")
    else:
        check_compatible(inputs, same_arch=True)
    if method in ("task-arithmetic", "ties"):
        if options.base is None:
            raise ConfigError(f"--method {method} needs --base INIT: the checkpoint all inputs were adapted from")
        if not (0.0 < options.density <= 1.0):
            raise ConfigError(f"--density must be in (0, 1], got {options.density}")
    if not (options.scale == options.scale and abs(options.scale) < float("inf")):
        raise ConfigError(f"--scale must be finite, got {options.scale}")
    base = open_input(options.base) if method in ("task-arithmetic", "ties") else None
    if base is not None:
        _check_base(base, ref)
    domains = None
    if method == "backbone":
        if ref.meta.get("kind") != "segmentor":
            raise ModelMismatchError(f"'{ref.name}' is a {ref.meta.get('kind')} checkpoint; backbone-only merging "
                                     "needs segmentors (encoder + head)")
        domains = validate_domain_names(options.domains or default_domain_names(inputs))
        if len(domains) != len(inputs):
            raise ConfigError(f"{len(domains)} domain names for {len(inputs)} models; give one per model")
    check_integer_buffers(inputs, [k for k in ref.tensors if k in shared])

    for inp in inputs + ([base] if base else []):
        _ = inp.sha256  # hash before writing: provenance records exactly what was read
    pooled = method != "linear"
    groups = bn.find_bn_groups(ref.tensors)
    meta = _output_meta(inputs, ref, method, weights, options, anchor, base, domains)

    with TensorReader([i.path for i in inputs]) as reader, \
            TensorReader([base.path] if base else []) as reader_base:
        merger = _KeyMerger(reader, groups, pooled)
        fallback: list[str] = []
        layer_report = None
        if method in ("linear", "bn"):
            steps = _plan_uniform(inputs, merger, list(ref.tensors), weights)
        elif method == "layerwise":
            steps, layer_report = _plan_layerwise(inputs, merger, anchor or 0, weights, options.schedule, shared)
        elif method == "backbone":
            steps = _plan_backbone(inputs, merger, weights, domains or [])
        else:
            assert base is not None
            steps, fallback = _plan_arithmetic(inputs, merger, reader_base, base, weights, options)
        if fallback:
            messages.append(f"{len(fallback)} float tensors (e.g. '{fallback[0]}') are not in the base "
                            "checkpoint: merged as a weighted mean")
            meta["provenance"]["merge"]["linear_fallback_tensors"] = len(fallback)
        with stream_checkpoint(out, [(s.out_key, s.info) for s in steps], meta) as writer:
            for i, step in enumerate(steps):
                writer.write(step.out_key, step.compute())
                if progress:
                    progress(i + 1, len(steps))

    return MergeReport(
        out=str(out), method=method, inputs=[str(i.path) for i in inputs], weights=weights, messages=messages,
        num_tensors=len(steps), bn_layers=len({g.prefix for g in groups.values()}),
        seconds=time.perf_counter() - started, anchor=str(ref.path) if anchor is not None else None,
        heads=domains, layer_anchor_weights=layer_report)


def _output_meta(inputs: Sequence[MergeInput], ref: MergeInput, method: str, weights: Sequence[float],
                 options: MergeOptions, anchor: int | None, base: MergeInput | None,
                 domains: Sequence[str] | None) -> dict[str, Any]:
    meta = {k: v for k, v in ref.meta.items() if k != "provenance"}
    merge: dict[str, Any] = {
        "method": method,
        "inputs": [{"file": i.name, "sha256": i.sha256, "arch": i.meta.get("arch")} for i in inputs],
        "weights": list(weights),
        "bn_statistics": "pooled" if method != "linear" else "averaged",
    }
    if anchor is not None:
        merge["anchor"] = inputs[anchor].name
        merge["schedule"] = options.schedule.to_json()
    if base is not None:
        merge["base"] = {"file": base.name, "sha256": base.sha256}
        merge["scale"] = options.scale
        if method == "ties":
            merge["density"] = options.density
    meta["provenance"] = {"merge": merge, "sources": [i.meta.get("provenance") or {} for i in inputs]}
    if domains is not None:
        meta["kind"] = MULTIHEAD_KIND
        meta["heads"] = list(domains)
    return meta
