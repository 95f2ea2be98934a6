"""What `edgeseg info` reports about a checkpoint or a registry architecture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _measure(model: Any, height: int, width: int) -> dict[str, Any]:
    from edgeseg.models.flops import count_gmacs, count_parameters

    gmacs = count_gmacs(model, height, width)
    return {
        "params": count_parameters(model),
        "encoder_params": count_parameters(model.encoder),
        "input_size": [height, width],
        "gmacs": round(gmacs, 3),
        "gflops": round(2 * gmacs, 3),
    }


def describe_arch(arch: str, height: int, width: int, num_classes: int = 19) -> dict[str, Any]:
    from edgeseg.models.registry import create_model

    model = create_model(arch, num_classes=num_classes)
    return {"arch": arch, "kind": "segmentor", "num_classes": num_classes, **_measure(model, height, width)}


def describe_checkpoint(path: str | Path, height: int, width: int) -> dict[str, Any]:
    from edgeseg.checkpoint import build_model, load_state, load_state_strict

    state, meta = load_state(path)
    model = build_model(meta)
    if meta["kind"] == "segmentor":
        load_state_strict(model, state, str(path))
    desc = {
        "file": str(path),
        "arch": meta["arch"],
        "kind": meta["kind"],
        "num_classes": meta["num_classes"],
        "classes": meta.get("classes"),
        "mean": meta.get("mean"),
        "std": meta.get("std"),
        "provenance": meta.get("provenance", {}),
        **_measure(model, height, width),
    }
    return desc


def format_description(desc: dict[str, Any]) -> str:
    lines = [
        f"arch:        {desc['arch']} ({desc['kind']})",
        f"classes:     {desc['num_classes']}"
        + (f"  {', '.join(desc['classes'])}" if desc.get("classes") else ""),
        f"parameters:  {desc['params'] / 1e6:.3f} M (encoder {desc['encoder_params'] / 1e6:.3f} M)",
        f"compute:     {desc['gmacs']:.2f} GMACs = {desc['gflops']:.2f} GFLOPs (2 per MAC) at "
        f"{desc['input_size'][0]}x{desc['input_size'][1]}",
    ]
    if desc.get("mean"):
        lines.append(f"mean/std:    {desc['mean']} / {desc['std']}")
    if desc.get("provenance"):
        lines.append(f"provenance:  {json.dumps(desc['provenance'])}")
    return "\n".join(lines)
