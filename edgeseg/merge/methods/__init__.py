"""The merge-method registry: `--method NAME` -> a `MergeMethod` (see base.py for the shape).

A new method is one module in this folder and one row below; the CLI (`edgeseg merge`, `merge-export`),
`--param NAME=VALUE` validation and `--help` all read this table. Importing it does not import torch.
"""

from __future__ import annotations

from edgeseg.errors import ConfigError
from edgeseg.merge.methods import backbone, bn, dare, layerwise, linear, task_arithmetic, ties
from edgeseg.merge.methods.base import MergeMethod

REGISTRY: dict[str, MergeMethod] = {
    m.name: m
    for m in (
        linear.METHOD,
        bn.METHOD,
        layerwise.METHOD,
        backbone.METHOD,
        task_arithmetic.METHOD,
        ties.METHOD,
        dare.METHOD,
    )
}


def get_method(name: str) -> MergeMethod:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown merge method '{name}'; choose one of: {', '.join(REGISTRY)}") from None


def methods_help() -> str:
    """Every method with its parameters, for `--help` (generated from the registry)."""
    lines = []
    for method in REGISTRY.values():
        needs = " Needs --base." if method.needs_base else ""
        lines.append(f"{method.name}: {method.summary}.{needs}")
        lines += [f"  --param {line}" for line in method.help_lines()]
    return "\n".join(lines)
