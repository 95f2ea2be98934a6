"""One schema for the metadata our checkpoints and ONNX files carry: parsed once, on read, so a malformed
field (a class list that is a number, a std that is a string, a version that is text) is one line naming
the field, never a TypeError deep inside evaluation or export.

Readers call `check_checkpoint_meta` / `check_onnx_meta`; everything after can trust the types.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any, Mapping[str, Any]], str | None]  # (value, whole meta) -> problem or None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any, _m: Mapping[str, Any]) -> str | None:
        if not _is_int(v):
            return f"must be an integer, got {type(v).__name__} {v!r}"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must be in [{lo}, {hi}], got {v}"
        return None

    return check


def text(v: Any, _m: Mapping[str, Any]) -> str | None:
    return None if isinstance(v, str) and v else f"must be a non-empty string, got {v!r}"


def boolean(v: Any, _m: Mapping[str, Any]) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def mapping(v: Any, _m: Mapping[str, Any]) -> str | None:
    return None if isinstance(v, dict) else f"must be a JSON object, got {type(v).__name__}"


def one_of(*choices: str) -> Check:
    def check(v: Any, _m: Mapping[str, Any]) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}, got {v!r}"

    return check


def class_names(v: Any, m: Mapping[str, Any]) -> str | None:
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        return f"must be a list of class names, got {type(v).__name__}"
    n = m.get("num_classes")
    if _is_int(n) and len(v) != n:
        return f"has {len(v)} names for num_classes={n}"
    return None


def palette(v: Any, m: Mapping[str, Any]) -> str | None:
    if not isinstance(v, list) or not all(
        isinstance(c, list) and len(c) == 3 and all(_is_int(x) and 0 <= x <= 255 for x in c) for c in v
    ):
        return "must be a list of [r, g, b] colours, each 0..255"
    n = m.get("num_classes")
    if _is_int(n) and len(v) < n:
        return f"has {len(v)} colours for num_classes={n}"
    return None


def rgb_triple(positive: bool) -> Check:
    def check(v: Any, _m: Mapping[str, Any]) -> str | None:
        if not isinstance(v, list) or len(v) != 3 or not all(_is_num(x) for x in v):
            return f"must be a list of 3 finite numbers, got {v!r}"
        if positive and any(x <= 0 for x in v):
            return f"must be > 0, got {v!r}"
        return None

    return check


def size_or_null(v: Any, _m: Mapping[str, Any]) -> str | None:
    if v is None or (isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v)):
        return None
    return f"must be [height, width] or null, got {v!r}"


def int_or_null(v: Any, m: Mapping[str, Any]) -> str | None:
    return None if v is None else integer(1)(v, m)


def names_list(v: Any, _m: Mapping[str, Any]) -> str | None:
    if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
        return None
    return f"must be a non-empty list of names, got {v!r}"


CHECKPOINT_FIELDS: dict[str, Check] = {
    "format_version": one_of("1"),
    "arch": text,
    "num_classes": integer(1, 100000),
    "kind": text,
    "classes": class_names,
    "palette": palette,
    "mean": rgb_triple(False),
    "std": rgb_triple(True),
    "arch_overrides": mapping,
    "provenance": mapping,
    "storage": text,
    "heads": names_list,
}
CHECKPOINT_REQUIRED = ("arch", "num_classes", "kind")

ONNX_FIELDS: dict[str, Check] = {
    "format_version": integer(1),
    "num_classes": integer(1, 100000),
    "classes": class_names,
    "palette": palette,
    "mean": rgb_triple(False),
    "std": rgb_triple(True),
    "input_size": size_or_null,
    "batch": int_or_null,
    "output": one_of("labels", "logits", "probs"),
    "preprocess": boolean,
    "precision": one_of("fp32", "fp16", "bf16", "int8"),
    "shaped_for": one_of("onnxruntime", "openvino"),
    "opset": integer(1),
    "arch": text,
    "provenance": mapping,
}


def problems(meta: Mapping[str, Any], fields: Mapping[str, Check], required: tuple[str, ...]) -> str | None:
    """The first problem as "field 'x' ...", or None when the metadata fits the schema."""
    for key in required:
        if key not in meta:
            return f"lacks the '{key}' metadata field"
    for key, check in fields.items():
        if key in meta:
            problem = check(meta[key], meta)
            if problem:
                return f"metadata field '{key}' {problem}"
    return None
