"""The sidecar JSON next to every TensorRT engine, and the check that refuses foreign engines.

A serialized engine only runs on the TensorRT version and GPU architecture that built it; loading it
elsewhere fails deep inside TensorRT (or silently misbehaves). `edgeseg build-engine` writes
`<engine>.json` with the facts below plus the ONNX model's edgeseg metadata (classes, palette, mean/std,
output kind), and the runtime compares those facts with the current machine BEFORE deserializing.
Pure logic, no TensorRT or CUDA import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import RuntimeBackendError

FORMAT = "edgeseg-engine"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DeviceFacts:
    """What an engine is tied to: TensorRT version and the GPU (name, compute capability)."""

    tensorrt_version: str
    device_name: str
    compute_capability: str  # "8.7"


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def make_sidecar(
    facts: DeviceFacts,
    *,
    precision: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    model_meta: dict[str, Any],
    onnx_path: str,
    onnx_sha256: str,
    dla_core: int | None,
    edgeseg_version: str,
    build: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensorrt_version": facts.tensorrt_version,
        "device_name": facts.device_name,
        "compute_capability": facts.compute_capability,
        "precision": precision,
        "dla_core": dla_core,
        "inputs": inputs,
        "outputs": outputs,
        "onnx": {"file": Path(onnx_path).name, "sha256": onnx_sha256},
        "model": model_meta,
        "build": build or {},
        "edgeseg_version": edgeseg_version,
    }


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    path = sidecar_path(engine)
    if not path.exists():
        raise RuntimeBackendError(
            f"engine '{engine}' has no sidecar '{path.name}' (written by `edgeseg "
            "build-engine`), so its TensorRT version and GPU are unknown; rebuild the "
            "engine on this device with `edgeseg build-engine model.onnx --out ...`"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RuntimeBackendError(
            f"cannot read engine sidecar '{path}' ({exc}); rebuild the engine"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RuntimeBackendError(f"'{path}' is not an edgeseg engine sidecar; rebuild the engine")
    missing = [
        k
        for k in ("tensorrt_version", "compute_capability", "device_name", "model", "inputs", "outputs")
        if k not in data
    ]
    if missing:
        raise RuntimeBackendError(f"engine sidecar '{path}' lacks {missing}; rebuild the engine")
    return data


def _version_key(version: str) -> tuple[str, ...]:
    """TensorRT engines need the same major.minor.patch (the build number may differ)."""
    return tuple(version.split(".")[:3])


def compatibility_problems(sidecar: dict[str, Any], here: DeviceFacts) -> list[str]:
    """Reasons the engine cannot run here (empty list = compatible). A different GPU name with the same
    compute capability is allowed (same SM: TensorRT accepts it), only the version and SM are hard."""
    problems = []
    if _version_key(sidecar["tensorrt_version"]) != _version_key(here.tensorrt_version):
        problems.append(
            f"TensorRT {sidecar['tensorrt_version']} built it, this machine has {here.tensorrt_version}"
        )
    if sidecar["compute_capability"] != here.compute_capability:
        problems.append(
            f"it was built for {sidecar['device_name']} (sm_{sidecar['compute_capability'].replace('.', '')}), "
            f"this GPU is {here.device_name} (sm_{here.compute_capability.replace('.', '')})"
        )
    return problems


def require_compatible(engine: str | Path, sidecar: dict[str, Any], here: DeviceFacts) -> None:
    problems = compatibility_problems(sidecar, here)
    if problems:
        onnx_file = sidecar.get("onnx", {}).get("file", "model.onnx")
        raise RuntimeBackendError(
            f"engine '{engine}' cannot run here: {'; '.join(problems)}. TensorRT engines only run on the "
            f"TensorRT version and GPU that built them: rebuild it on this device with "
            f"`edgeseg build-engine {onnx_file} --out {Path(engine).name}`"
        )
