"""edgeseg checkpoints: one `.safetensors` file whose metadata carries everything needed to rebuild and use
the model (arch, classes, palette, mean/std, provenance). No pickle anywhere.

Metadata values are strings (a safetensors rule); structured values are JSON-encoded.
`read_checkpoint_meta` parses the header with the standard library only, so the device side can read
model facts without torch.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.errors import CheckpointError, InputPathError

FORMAT = "edgeseg"
FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 1024 * 1024


def _require_file(path: Path, what: str = "checkpoint") -> None:
    if not path.exists():
        raise InputPathError(f"{what} '{path}' does not exist; check the path")
    if not path.is_file():
        raise InputPathError(f"{what} '{path}' is not a file")


def _resolve(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    from edgeseg.weights import is_builtin, resolve_weights

    return resolve_weights(path) if is_builtin(path) else path


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor dtypes/shapes + `__metadata__`), no torch needed."""
    path = Path(path)
    _require_file(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("file shorter than a safetensors header")
            (n,) = struct.unpack("<Q", raw)
            if n <= 0 or n > _MAX_HEADER or n > path.stat().st_size - 8:
                raise ValueError("implausible header length")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise CheckpointError(
            f"'{path}' is not a readable safetensors file ({exc}); is it truncated or another format?"
        ) from None
    return header


def decode_meta(raw: dict[str, str]) -> dict[str, Any]:
    """Every value is JSON (strings too), so types survive the round trip."""
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            raise CheckpointError(
                f"checkpoint metadata field '{key}' is not valid JSON; the file was not written by edgeseg"
            ) from None
    return meta


def encode_meta(meta: dict[str, Any]) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in meta.items() if value is not None}


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Metadata of an edgeseg checkpoint, validated; raises CheckpointError for foreign files.

    `path` may be `builtin:<name>`, a shipped initial-weights file (edgeseg.weights), verified first."""
    path = _resolve(path)
    header = read_safetensors_header(path)
    raw = header.get("__metadata__") or {}
    if raw.get("format") != json.dumps(FORMAT):
        raise CheckpointError(
            f"'{path}' is a safetensors file but not an edgeseg checkpoint; "
            "import foreign weights with `edgeseg convert`"
        )
    meta = decode_meta(raw)
    from edgeseg.meta_schema import CHECKPOINT_FIELDS, CHECKPOINT_REQUIRED, problems

    problem = problems(meta, CHECKPOINT_FIELDS, CHECKPOINT_REQUIRED)
    if problem:
        raise CheckpointError(f"'{path}' {problem}; re-save or re-convert it")
    return meta


def default_class_meta(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Class names and palette: Cityscapes' 19 train classes when the count matches, else generic."""
    from edgeseg.data.labels import CLASSES, PALETTE

    if num_classes == len(CLASSES):
        return list(CLASSES), [list(c) for c in PALETTE]
    names = [f"class_{i}" for i in range(num_classes)]
    palette = [[(37 * i) % 256, (91 * i + 50) % 256, (151 * i + 100) % 256] for i in range(num_classes)]
    return names, palette


def model_meta(model: Any, **extra: Any) -> dict[str, Any]:
    """Metadata for `model`, filling defaults (classes, palette, ImageNet mean/std) where unset."""
    meta: dict[str, Any] = dict(getattr(model, "meta", {}) or {})
    meta.update({k: v for k, v in extra.items() if v is not None})
    names, palette = default_class_meta(model.num_classes)
    meta.setdefault("classes", names)
    meta.setdefault("palette", palette)
    meta.setdefault("mean", list(IMAGENET_MEAN))
    meta.setdefault("std", list(IMAGENET_STD))
    meta.setdefault("provenance", {})
    if len(meta["classes"]) != model.num_classes:
        raise CheckpointError(
            f"{len(meta['classes'])} class names given for a {model.num_classes}-class model"
        )
    meta.update(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": model.arch,
            "num_classes": model.num_classes,
            "kind": meta.get("kind", "segmentor"),
            "arch_overrides": getattr(model, "arch_overrides", {}),
        }
    )
    return meta


def save_state(state: dict[str, Any], path: str | os.PathLike[str], meta: dict[str, Any]) -> None:
    """Write tensors + metadata atomically (temp file + rename)."""
    from safetensors.torch import save_file

    from edgeseg.io_utils import atomic_path

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=encode_meta(meta))


def save_model(model: Any, path: str | os.PathLike[str], **meta: Any) -> None:
    """Save a Segmentor as an edgeseg checkpoint. Extra keyword metadata (e.g. provenance=...) is stored."""
    save_state(model.state_dict(), path, model_meta(model, **meta))


def load_state(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, metadata) of an edgeseg checkpoint; int8-stored shipped weights come back as fp32."""
    from safetensors.torch import load_file

    path = _resolve(path)
    meta = read_checkpoint_meta(path)
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt payloads
        raise CheckpointError(
            f"cannot read tensors from '{path}' ({exc}); the file may be truncated"
        ) from None
    if meta.get("storage") is not None:
        from edgeseg.weights import STORAGE_INT8, dequantise_state

        if meta["storage"] != STORAGE_INT8:
            raise CheckpointError(
                f"'{path}' uses tensor storage '{meta['storage']}', which this edgeseg cannot read; "
                "upgrade edgeseg"
            )
        state = dequantise_state(state)
    return state, meta


def build_model(meta: dict[str, Any]):
    """An un-initialised-weights model matching checkpoint metadata."""
    from edgeseg.models.registry import create_model

    model = create_model(meta["arch"], num_classes=meta["num_classes"], **meta.get("arch_overrides", {}))
    model.meta = {
        k: v
        for k, v in meta.items()
        if k not in ("format", "format_version", "arch", "num_classes", "arch_overrides")
    }
    return model


def load_model(path: str | os.PathLike[str]):
    """Load an edgeseg checkpoint -> model in eval mode, with `model.meta` filled from the file."""
    state, meta = load_state(path)
    if meta["kind"] == "multihead":
        raise CheckpointError(
            f"'{path}' is a multi-head (merged, one head per domain) checkpoint; load it with "
            "edgeseg.merge.multihead.load_any_model, or split it with `edgeseg merge split`"
        )
    if meta["kind"] != "segmentor":
        raise CheckpointError(
            f"'{path}' holds {meta['kind']} weights only (e.g. ImageNet-pretrained), not a "
            "full segmentation model; use it as initial weights (--init) for training"
        )
    model = build_model(meta)
    load_state_strict(model, state, str(path))
    return model.eval()


def check_weights(state: dict[str, Any], source: str) -> None:
    """Refuse weights no trained model has: NaN/Inf values, or integer tensors where the architecture has
    floating-point ones (checked against the model's own dtypes in `load_state_strict`)."""
    import torch

    for key, value in state.items():
        if key.endswith(
            (".weight", ".bias", ".running_mean", ".running_var")
        ) and not torch.is_floating_point(value):
            raise CheckpointError(
                f"'{source}': tensor '{key}' is {str(value.dtype).replace('torch.', '')}, not a "
                "floating-point type; the file is corrupt or not a model"
            )
        if torch.is_floating_point(value) and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"'{source}': tensor '{key}' contains NaN or Inf values; the model diverged or "
                "the file is corrupt - use an earlier checkpoint"
            )


def load_state_strict(module: Any, state: dict[str, Any], source: str, prefix: str = "") -> None:
    """Load `state` into `module` requiring identical keys and shapes; a mismatch is one clear line."""
    own = module.state_dict()
    missing = [k for k in own if prefix + k not in state]
    unexpected = [k for k in state if k.startswith(prefix) and k[len(prefix) :] not in own]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(
            f"'{source}' does not fit architecture '{getattr(module, 'arch', '?')}': "
            f"{detail} ({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )
    for k, v in own.items():
        got = state[prefix + k]
        if tuple(got.shape) != tuple(v.shape):
            raise CheckpointError(
                f"'{source}': tensor '{k}' has shape {tuple(got.shape)}, "
                f"architecture expects {tuple(v.shape)}"
            )
        if v.is_floating_point() != got.is_floating_point():
            raise CheckpointError(
                f"'{source}': tensor '{k}' is {str(got.dtype).replace('torch.', '')}, the "
                f"architecture expects {str(v.dtype).replace('torch.', '')}; the file is corrupt "
                "or not a model"
            )
    check_weights({k: state[prefix + k] for k in own}, source)
    module.load_state_dict({k: state[prefix + k] for k in own}, strict=True)
