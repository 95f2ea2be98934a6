"""The facts an exported ONNX file carries about itself, in its `metadata_props` (no side files).

Written by `edgeseg export`, read back by the runtimes through ONNX Runtime's `custom_metadata_map` (or
`onnx` when building an engine). Every value is JSON so lists and numbers survive. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edgeseg.errors import RuntimeBackendError

FORMAT = "edgeseg-onnx"
FORMAT_VERSION = 1
OUTPUT_KINDS = ("labels", "logits", "probs")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# the runtime a graph was shaped for (`edgeseg export --for`): the same function, a different node order
SHAPED_FOR = ("onnxruntime", "openvino")

# key -> meaning; the export writes all of them, readers rely on the REQUIRED ones.
KEYS = {
    "format": "always 'edgeseg-onnx'",
    "format_version": "integer, bumped on incompatible changes",
    "edgeseg_version": "version of edgeseg that exported the file",
    "arch": "registry architecture name",
    "num_classes": "number of classes",
    "classes": "class names, index = label id",
    "palette": "RGB colour per class",
    "mean": "RGB normalisation mean in 0..255 units",
    "std": "RGB normalisation std in 0..255 units",
    "input_size": "[height, width] the graph was exported for, or null when height/width are dynamic",
    "batch": "fixed batch size, or null when dynamic",
    "output": "labels (uint8 at input resolution) | logits | probs (both at 1/4 input resolution)",
    "preprocess": "true: input is uint8 BGR (B,H,W,3), normalisation inside the graph",
    "precision": "fp32 | fp16 | bf16 (OpenVINO's inference precision) | int8",
    "shaped_for": "onnxruntime | openvino: the runtime the graph's layout was chosen for (absent = onnxruntime)",
    "opset": "ONNX opset",
    "source_checkpoint": "file name of the checkpoint it was exported from",
    "source_sha256": "SHA-256 of that checkpoint",
    "provenance": "the checkpoint's provenance record",
}
REQUIRED = (
    "format",
    "format_version",
    "num_classes",
    "classes",
    "palette",
    "mean",
    "std",
    "output",
    "preprocess",
    "input_size",
)


def encode(meta: Mapping[str, Any]) -> dict[str, str]:
    """Metadata dict -> string props (JSON values); unknown keys are refused so typos cannot slip in."""
    unknown = set(meta) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown ONNX metadata keys {sorted(unknown)}")
    return {k: json.dumps(v) for k, v in meta.items()}


def decode(props: Mapping[str, str], source: str) -> dict[str, Any]:
    """String props -> metadata dict, validated. Raises RuntimeBackendError for foreign or stale files."""
    if props.get("format") != json.dumps(FORMAT):
        raise RuntimeBackendError(
            f"'{source}' carries no edgeseg metadata (not written by `edgeseg export`); "
            "export the checkpoint with `edgeseg export CKPT --out model.onnx`"
        )
    meta: dict[str, Any] = {}
    for key, value in props.items():
        if key not in KEYS:
            continue  # other tools may add their own props
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            raise RuntimeBackendError(
                f"'{source}': metadata field '{key}' is not valid JSON; re-export the model"
            ) from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise RuntimeBackendError(
            f"'{source}' lacks metadata {missing}; re-export it with this edgeseg version"
        )
    from edgeseg.meta_schema import ONNX_FIELDS, problems

    problem = problems(meta, ONNX_FIELDS, REQUIRED)
    if problem:
        raise RuntimeBackendError(f"'{source}': {problem}; re-export the model")
    if meta["format_version"] > FORMAT_VERSION:
        raise RuntimeBackendError(
            f"'{source}' was exported by a newer edgeseg (metadata v{meta['format_version']}, "
            f"this one reads v{FORMAT_VERSION}); upgrade edgeseg"
        )
    if meta["output"] not in OUTPUT_KINDS:
        raise RuntimeBackendError(f"'{source}': unknown output kind {meta['output']!r}")
    if len(meta["classes"]) != meta["num_classes"]:
        raise RuntimeBackendError(
            f"'{source}': {len(meta['classes'])} class names for "
            f"{meta['num_classes']} classes; re-export the model"
        )
    return meta


def read_onnx_file_meta(path: str) -> dict[str, Any]:
    """Metadata of an ONNX file via the `onnx` package (engine builds, tests); the graph is not loaded
    beyond the protobuf parse."""
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / OSError variants
        raise RuntimeBackendError(
            f"cannot read '{path}' as ONNX ({one_line(exc)}); the file may be truncated: export it again"
        ) from None
    return decode({p.key: p.value for p in model.metadata_props}, path)


def one_line(exc: BaseException) -> str:
    """The most telling line of an exception message (ONNX Runtime errors span many lines)."""
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
