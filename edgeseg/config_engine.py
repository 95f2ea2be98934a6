"""Typed configuration from plain values: frozen dataclasses <- TOML / `key=value` overrides.

Any tree of frozen dataclasses is a config. Field types drive the checks: bool, int, float, str, tuples
(fixed length or `tuple[T, ...]`), nested dataclasses, `X | None`, and `Literal[...]` for choices (the
allowed values live in the type, so there is no separate choices table to drift). Every problem is one
`ConfigError` line naming the dotted key; an unknown key suggests the closest known one.

    cfg = build(MyConfig, merge(defaults, parse_override("train.lr=1e-3")))
    config_to_dict(cfg)   # plain nested dict (tuples -> lists), the inverse of build()
    to_toml(cfg)          # the same as TOML
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import types
import typing
from typing import Any

from edgeseg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - py3.10
    import tomli as tomllib


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def is_config_class(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def choices_of(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a `Literal[...]` field type (None for any other type)."""
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None


def suggest(word: str, known: list[str]) -> str:
    """'; did you mean X?' for the closest known word, or ''."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a TOML value to the field type; a mismatch is one clear line naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return coerce(value, next(a for a in typing.get_args(tp) if a is not type(None)), key)
    allowed = choices_of(tp)
    if allowed is not None:
        if value in allowed and type(value) is type(allowed[0]):
            return value
        hint = suggest(str(value), [str(a) for a in allowed])
        raise ConfigError(
            f"config key '{key}' = {value!r}; choose one of: {', '.join(map(str, allowed))}{hint}"
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce(v, args[0], key) for v in value)
            if len(value) == len(args):
                return tuple(coerce(v, a, key) for v, a in zip(value, args, strict=True))
            raise ConfigError(f"config key '{key}' needs {len(args)} values, got {len(value)}")
    else:  # pragma: no cover - every field type is listed above
        raise ConfigError(f"config key '{key}' has an unsupported type {tp}")
    raise ConfigError(f"config key '{key}' expects {type_name(tp)}, got {value!r}")


def type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        inner = type_name(args[0])
        return f"a list of {inner}" if args[-1] is Ellipsis else f"a list of {len(args)} {inner}"
    allowed = choices_of(tp)
    if allowed is not None:
        return "one of " + ", ".join(map(str, allowed))
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from nested dicts, rejecting unknown keys (with a close-match hint)."""
    types_ = field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in types_:
            known = sorted(types_)
            raise ConfigError(
                f"unknown config key '{full}'{suggest(key, known)} (known keys"
                f"{' in ' + prefix[:-1] if prefix else ''}: {', '.join(known)})"
            )
        tp = types_[key]
        if is_config_class(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' is a section; give a table, e.g. [{full}]")
            kwargs[key] = build(tp, value, f"{full}.")
        else:
            kwargs[key] = coerce(value, tp, full)
    return cls(**kwargs)


def check_literals(cfg: Any, prefix: str = "") -> None:
    """Every Literal field of a built config (defaults included) holds an allowed value."""
    types_ = field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_literals(value, f"{prefix}{f.name}.")
        elif choices_of(types_[f.name]) is not None:
            coerce(value, types_[f.name], f"{prefix}{f.name}")


def check_finite(values: dict[str, Any], prefix: str = "") -> None:
    """No NaN or infinity anywhere in a config: they pass every `<` check and poison work silently."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            check_finite(value, name + ".")
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"config key '{name}' = {v}; give a finite number")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples -> lists), suitable for JSON/TOML and for rebuilding the config."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` over `base`, recursively for nested tables."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """'duda.gradual.schedule=cosine' -> {'duda': {'gradual': {'schedule': 'cosine'}}}.

    The value is read as a TOML value (numbers, true/false, [lists], "strings"); anything that is not
    valid TOML is taken as a bare string, so `--set models.small_init=/path/x.safetensors` works unquoted.
    """
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value (e.g. --set iters=2000)")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    nested: dict[str, Any] = {}
    node = nested
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None


def to_toml(cfg: Any) -> str:
    """Serialise a config as TOML (round-trips through read_toml + build)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(v)  # pragma: no cover

    def emit(values: dict[str, Any], prefix: str) -> None:
        plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        if prefix and plain:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {scalar(v)}" for k, v in plain.items())
        for k, v in tables.items():
            emit(v, f"{prefix}.{k}" if prefix else k)

    emit(config_to_dict(cfg), "")
    return "\n".join(lines).lstrip("\n") + "\n"
