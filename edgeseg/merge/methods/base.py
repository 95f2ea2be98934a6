"""The shape of a merge method: declare, validate, plan.

A method is an object with
    name, summary         how users choose it (`--method NAME`) and the line `--help` shows
    Params                a frozen `MergeParams` dataclass: typed fields with defaults, help text and ranges
    needs_base            True if it works on task vectors relative to `--base` (the shared initial model)
    pools_bn              True if BatchNorm running statistics are pooled (Li et al. Eq. 5), else averaged
    interpolates          True if two inputs with weights (lambda, 1 - lambda) give the point lambda on the
                          straight line between them (what `edgeseg merge scan` walks)
    validate(inputs, p)   the checks that need the inputs' headers -> a `Layout` (nothing is read or written)
    plan(job)             -> a `Plan`: one lazy `Step` per output tensor, plus what to record

`merge_checkpoints` (api.py) does everything common: open and check the inputs and the base, normalise the
weights, hash for provenance, stream the steps into an atomically renamed file. Adding a method is one
module with a `MergeMethod` subclass and one row in `edgeseg.merge.methods.REGISTRY`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgeseg.merge.io import MergeInput, TensorReader, check_compatible
from edgeseg.merge.methods.params import MergeParams, NoParams, describe_params, parse_params
from edgeseg.merge.plan import KeyMerger, Step


@dataclass
class Layout:
    """What `validate` settled: which input the output follows and which keys are merged across inputs."""

    ref: int = 0  # the input whose keys, order and metadata the output follows
    shared: frozenset[str] | None = None  # keys every input contributes to (None: all of the reference's)
    messages: list[str] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)  # the method's own settled values (anchor, heads)


@dataclass
class MergeJob:
    """Everything `plan` may use; tensors are read through `merger` (inputs) and `base_reader` (the base)."""

    inputs: Sequence[MergeInput]
    weights: Sequence[float]
    params: Any  # the method's Params instance
    layout: Layout
    merger: KeyMerger
    base: MergeInput | None = None
    base_reader: TensorReader | None = None

    @property
    def ref(self) -> MergeInput:
        return self.inputs[self.layout.ref]

    @property
    def shared(self) -> frozenset[str]:
        return self.layout.shared if self.layout.shared is not None else frozenset(self.ref.tensors)


@dataclass
class Plan:
    steps: list[Step]
    provenance: dict[str, Any] = field(default_factory=dict)  # added to provenance.merge
    meta: dict[str, Any] = field(default_factory=dict)  # top-level metadata overrides (e.g. kind, heads)
    report: dict[str, Any] = field(default_factory=dict)  # MergeReport fields (anchor, heads, ...)
    messages: list[str] = field(default_factory=list)


class MergeMethod(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[MergeParams]] = NoParams
    needs_base: ClassVar[bool] = False
    pools_bn: ClassVar[bool] = True
    interpolates: ClassVar[bool] = False

    def parse(self, given: Any) -> MergeParams:
        """Names -> text/values (or a Params instance) -> this method's checked Params."""
        return parse_params(self.Params, given, self.name)

    def validate(self, inputs: Sequence[MergeInput], params: Any) -> Layout:
        """Default: one architecture, every key merged, the output follows the first input."""
        check_compatible(inputs, same_arch=True)
        return Layout()

    @abstractmethod
    def plan(self, job: MergeJob) -> Plan: ...

    def help_lines(self) -> list[str]:
        return describe_params(self.Params)
