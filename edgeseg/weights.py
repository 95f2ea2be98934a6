"""Initial weights shipped inside the package: the synthetic world's "ImageNet" encoders.

`edgeseg pretrain` trains an encoder on the generic corpus; `edgeseg weights pack` stores it in
`edgeseg/shipped/` with a row in `edgeseg/shipped/manifest.json` (sha256, the exact pretrain command, its
wall time and machine). Configs name such a file as `builtin:<name>` wherever a weights path is accepted
(`models.large_init`, `models.small_init`):

    resolve_weights("builtin:mit_b1_synth")  ->  .../edgeseg/shipped/mit_b1_synth.safetensors (sha256-checked)

Storage: tensors with two or more dimensions are int8 with one fp16 scale per output channel (symmetric),
1-D tensors (biases, norms: 0.3% of the bytes) stay fp32. The B1 encoder is 13.2 M parameters, 26 MB even in
fp16, and the package budget is
20 MB for all shipped weights; the int8 rounding error is ~0.4% of each channel's range, far below what
the first fine-tuning steps change. `checkpoint.load_state` dequantises transparently (to fp32), so a
shipped file is an ordinary edgeseg checkpoint to every command (`edgeseg info` too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgeseg.errors import CheckpointError, ConfigError

BUILTIN_PREFIX = "builtin:"
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
MANIFEST = "manifest.json"
STORAGE_INT8 = "int8-per-channel"
_SCALE_SUFFIX = "::scale"


def is_builtin(ref: str | Path) -> bool:
    return isinstance(ref, str) and ref.startswith(BUILTIN_PREFIX)


def read_manifest(folder: Path = SHIPPED_DIR) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        return {"format": 1, "weights": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path} is unreadable ({exc}); restore it from the repository (git checkout)"
        ) from None
    if not isinstance(data.get("weights"), dict):
        raise CheckpointError(f"{path} has no 'weights' table; restore it from the repository (git checkout)")
    return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def regenerate_hint(entry: dict[str, Any], name: str) -> str:
    cmd = entry.get("command") or "edgeseg pretrain ..."
    return f"`{cmd}` then `edgeseg weights pack {entry.get('run', '<run folder>')} --name {name}`"


def resolve_weights(ref: str | Path, folder: Path = SHIPPED_DIR) -> Path:
    """A filesystem path for a weights reference; `builtin:<name>` is looked up and sha256-verified."""
    if not is_builtin(ref):
        return Path(ref)
    name = str(ref)[len(BUILTIN_PREFIX) :]
    entries = read_manifest(folder)["weights"]
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ConfigError(f"unknown shipped weights '{ref}'; shipped: {known} (`edgeseg weights list`)")
    entry = entries[name]
    path = folder / entry["file"]
    if not path.is_file():
        raise CheckpointError(
            f"shipped weights '{ref}' ({path}) are missing; regenerate them: {regenerate_hint(entry, name)}"
        )
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"shipped weights '{ref}' ({path}) do not match the manifest (sha256 {digest[:12]}... "
            f"!= {entry['sha256'][:12]}...); the file was altered; regenerate it: "
            f"{regenerate_hint(entry, name)}"
        )
    return path


def quantise_state(state: dict[str, Any]) -> dict[str, Any]:
    """Float tensors -> int8 + per-output-channel fp16 scale (ndim >= 2); 1-D tensors are kept in fp32."""
    import torch

    out: dict[str, Any] = {}
    for key, t in state.items():
        if _SCALE_SUFFIX in key:
            raise CheckpointError(f"tensor name '{key}' clashes with the int8 storage's scale suffix")
        t = t.detach().float().cpu()
        if t.ndim >= 2:
            amax = t.abs().flatten(1).amax(1).clamp_min(1e-12)
            scale = (amax / 127.0).half().float()  # the scale as stored, so rounding uses what loading sees
            shape = (-1,) + (1,) * (t.ndim - 1)
            out[key] = torch.round(t / scale.view(shape)).clamp(-127, 127).to(torch.int8)
            out[key + _SCALE_SUFFIX] = scale.half()
        else:
            out[key] = t.clone()
    return out


def dequantise_state(stored: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `quantise_state` (fp32 tensors)."""
    out: dict[str, Any] = {}
    for key, t in stored.items():
        if key.endswith(_SCALE_SUFFIX):
            continue
        scale = stored.get(key + _SCALE_SUFFIX)
        if scale is not None:
            out[key] = t.float() * scale.float().view((-1,) + (1,) * (t.ndim - 1))
        else:
            out[key] = t.float()
    return out


def pack_run(run_dir: Path, name: str, folder: Path = SHIPPED_DIR) -> dict[str, Any]:
    """Store a pretraining run's encoder as shipped weights `name`, and record it in the manifest."""
    from edgeseg.checkpoint import load_state, save_state
    from edgeseg.io_utils import write_json_atomic

    run_dir = Path(run_dir)
    report_path = run_dir / "report.json"
    encoder_path = run_dir / "encoder.safetensors"
    if not report_path.is_file() or not encoder_path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a finished `edgeseg pretrain` run (needs report.json and "
            "encoder.safetensors); finish it with `edgeseg pretrain ... --resume`"
        )
    if not name.replace("_", "").isalnum():
        raise ConfigError(f"--name '{name}': use letters, digits and underscores only")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{report_path} is unreadable ({exc}); rerun the pretraining") from None
    state, meta = load_state(encoder_path)
    if meta.get("kind") != "encoder":
        raise CheckpointError(f"{encoder_path} holds {meta.get('kind')} weights, not an encoder")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.safetensors"
    meta = {**meta, "storage": STORAGE_INT8}
    stored = quantise_state(state)
    save_state(stored, target, meta)
    target.chmod(0o644)  # package data: readable by all (the atomic temp file was 0600)
    restored = dequantise_state(stored)
    rel_err = max(
        float((restored[k] - v.float()).abs().max() / v.float().abs().max().clamp_min(1e-12))
        for k, v in state.items()
    )
    entry = {
        "file": target.name,
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "arch": meta["arch"],
        "kind": "encoder",
        "storage": STORAGE_INT8,
        "params": int(report.get("encoder_params", 0)),
        "max_rel_quant_error": round(rel_err, 5),
        "command": report.get("command", ""),
        "run": str(run_dir),
        "wall_time_s": report.get("wall_time_s"),
        "machine": report.get("machine", {}),
        "heldout_corpus": report.get("heldout", {}),
        "corpus_version": meta.get("provenance", {}).get("pretrain", {}).get("corpus_version"),
    }
    manifest = read_manifest(folder)
    manifest["weights"][name] = entry
    write_json_atomic(folder / MANIFEST, manifest)
    return entry


def verify_all(folder: Path = SHIPPED_DIR) -> dict[str, str]:
    """name -> 'ok' or the error line, for every manifest row."""
    result = {}
    for name in read_manifest(folder)["weights"]:
        try:
            resolve_weights(BUILTIN_PREFIX + name, folder)
            result[name] = "ok"
        except (CheckpointError, ConfigError) as exc:
            result[name] = str(exc)
    return result
