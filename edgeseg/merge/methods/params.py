"""Merge-method parameters: a frozen dataclass per method, whose fields carry their help text and range.

    @dataclass(frozen=True)
    class TiesParams(MergeParams):
        density: float = param(0.2, "fraction of each task vector kept", lo=0, hi=1, lo_open=True)

`parse_params(cls, {"density": "0.5"})` builds one from text (the CLI's `--param density=0.5`) or typed values
(the library), rejecting unknown names with the list of valid ones; every instance checks its ranges and
choices on construction, however it was made. `describe_params(cls)` is the help line for one method.
Supported field types: float, int, bool, str, Literal[...] (choices), tuple[str, ...] (comma-separated),
each optionally `| None`.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from edgeseg.errors import ConfigError
from edgeseg.ranges import check_number, fmt_number, range_text


def param(
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Any:
    """A dataclass field with help text and (for numbers) an allowed range."""
    return dataclasses.field(
        default=default, metadata={"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}
    )


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: type  # float, int, bool, str or tuple (of str)
    default: Any
    help: str
    optional: bool = False
    choices: tuple[str, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def range_text(self) -> str:
        return range_text(self.lo, self.hi, self.lo_open, self.hi_open)

    def describe(self) -> str:
        if self.choices:
            allowed = f" (one of: {', '.join(self.choices)})"
        elif self.kind in (float, int):
            allowed = f" [{self.range_text()}]"
        else:
            allowed = " (true/false)" if self.kind is bool else ""
        default = ",".join(self.default) if isinstance(self.default, tuple) else self.default
        return f"{self.name}={'(none)' if default is None else _fmt(default)}: {self.help}{allowed}"


def _fmt(v: Any) -> str:
    return fmt_number(v) if isinstance(v, float) else str(v)


def _spec(field: dataclasses.Field, hint: Any) -> ParamSpec:
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    choices = None
    if typing.get_origin(hint) is Literal:
        choices, kind = tuple(str(a) for a in typing.get_args(hint)), str
    elif typing.get_origin(hint) is tuple:
        kind = tuple
    elif hint in (float, int, bool, str):
        kind = hint
    else:  # a programming error in a method module, not a user error
        raise TypeError(f"merge parameter '{field.name}' has unsupported type {hint}")
    meta = field.metadata
    return ParamSpec(
        field.name,
        kind,
        field.default,
        meta.get("help", ""),
        optional,
        choices,
        meta.get("lo"),
        meta.get("hi"),
        meta.get("lo_open", False),
        meta.get("hi_open", False),
    )


def _field_type(cls: type, field: dataclasses.Field) -> Any:
    """The field's annotation, evaluated (modules use `from __future__ import annotations`)."""
    if not isinstance(field.type, str):
        return field.type
    namespace = {"Literal": Literal, **vars(sys.modules[cls.__module__])}
    return eval(field.type, namespace)  # noqa: S307 - our own source's annotations, not user input


def param_specs(cls: type[MergeParams]) -> list[ParamSpec]:
    return [_spec(f, _field_type(cls, f)) for f in dataclasses.fields(cls)]


def _convert(spec: ParamSpec, value: Any, owner: str) -> Any:
    """Text or a typed value -> the field's type; ConfigError naming the parameter if it does not fit."""
    what = f"{owner} parameter '{spec.name}'"
    if value is None or (spec.optional and isinstance(value, str) and value.strip().lower() in ("", "none")):
        if spec.optional:
            return None
        raise ConfigError(f"{what} needs a value")
    try:
        if spec.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if spec.kind is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
        if spec.kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if spec.kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        kind = {tuple: "a comma-separated list", bool: "true or false"}.get(
            spec.kind, f"a {spec.kind.__name__}"
        )
        raise ConfigError(f"{what} must be {kind}, got '{value}'") from None


def check_value(spec: ParamSpec, value: Any, owner: str) -> None:
    if value is None:
        return
    what = f"{owner} parameter '{spec.name}'"
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{what} must be one of {', '.join(spec.choices)}, got '{value}'")
    if spec.kind in (float, int):
        check_number(value, what, spec.lo, spec.hi, spec.lo_open, spec.hi_open)


@dataclass(frozen=True)
class MergeParams:
    """Base of every method's parameter dataclass: checks types, ranges and choices on construction."""

    def __post_init__(self) -> None:
        owner = getattr(type(self), "owner", type(self).__name__)
        for spec in param_specs(type(self)):
            value = getattr(self, spec.name)
            converted = _convert(spec, value, owner)
            if converted is not value:
                object.__setattr__(self, spec.name, converted)
            check_value(spec, converted, owner)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class NoParams(MergeParams):
    """For methods without parameters."""


def parse_params(
    cls: type[MergeParams], given: Mapping[str, Any] | MergeParams | None, owner: str
) -> MergeParams:
    """`given` (names -> text or values, or an instance) -> an instance of `cls`, checked."""
    if isinstance(given, cls):
        return given
    if isinstance(given, MergeParams):
        raise ConfigError(f"{type(given).__name__} are not the parameters of merge method '{owner}'")
    given = dict(given or {})
    specs = {s.name: s for s in param_specs(cls)}
    unknown = [k for k in given if k not in specs]
    if unknown:
        valid = f"valid: {', '.join(specs)}" if specs else "it takes none"
        raise ConfigError(f"unknown parameter '{unknown[0]}' for merge method '{owner}' ({valid})")
    values = {k: _convert(specs[k], v, owner) for k, v in given.items()}
    return cls(**values)


def parse_assignments(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """['density=0.2', 'scale=1.5'] -> {'density': '0.2', 'scale': '1.5'}; a name given twice is an error."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ConfigError(f"--param '{item}' is not NAME=VALUE, e.g. --param density=0.2")
        if name in out:
            raise ConfigError(f"--param {name} is given more than once")
        out[name] = value.strip()
    return out


def describe_params(cls: type[MergeParams]) -> list[str]:
    return [s.describe() for s in param_specs(cls)]
