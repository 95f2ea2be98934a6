"""Strict import of foreign weights into edgeseg models (`edgeseg convert`).

Supported sources, auto-detected:
  * NVlabs / mmseg ImageNet MiT backbones `mit_bX.pth` (`patch_embed1.proj.weight`, `block1.0.attn.kv...`)
  * Hugging Face folders (`config.json` + `model.safetensors` | `pytorch_model.bin`) of SegformerModel,
    SegformerForSemanticSegmentation or SegformerForImageClassification (hub key names and the in-memory
    names of transformers >= 5)
  * mmseg segmentor checkpoints (`backbone.*`, `decode_head.*`) with the NVlabs SegFormer head or the
    DAFormer head, and DAFormer/MIC UDA checkpoints (`model.backbone.*`; the wrapper's other networks,
    `ema_model.*` / `imnet_model.*`, are listed as skipped; `--submodel ema_model` picks the EMA teacher).

Every source key is mapped by a rule or the import fails listing the unmapped keys (timm's filter-fn
style). The only keys ever dropped are classifiers (ImageNet heads, or a class count that differs from
the requested one) and the NVlabs head's unused `conv_seg`; each drop is reported.
Foreign `.pth`/`.bin` files are read with `torch.load(weights_only=True)` - never unpickled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import ConversionError, InputPathError

# (pattern, replacement) on keys with the wrapper prefix already removed. "KV:" targets are split below.
_NVLABS_RULES: list[tuple[str, str]] = [
    (r"^patch_embed(\d)\.proj\.(weight|bias)$", "encoder.patch_embeds.{0}.proj.{1}"),
    (r"^patch_embed(\d)\.norm\.(weight|bias)$", "encoder.patch_embeds.{0}.norm.{1}"),
    (r"^block(\d)\.(\d+)\.norm([12])\.(weight|bias)$", "encoder.stages.{0}.{1}.norm{2}.{3}"),
    (r"^block(\d)\.(\d+)\.attn\.q\.(weight|bias)$", "encoder.stages.{0}.{1}.attn.q.{2}"),
    (r"^block(\d)\.(\d+)\.attn\.kv\.(weight|bias)$", "KV:encoder.stages.{0}.{1}.attn.{2}"),
    (r"^block(\d)\.(\d+)\.attn\.proj\.(weight|bias)$", "encoder.stages.{0}.{1}.attn.proj.{2}"),
    (r"^block(\d)\.(\d+)\.attn\.sr\.(weight|bias)$", "encoder.stages.{0}.{1}.attn.sr.{2}"),
    (r"^block(\d)\.(\d+)\.attn\.norm\.(weight|bias)$", "encoder.stages.{0}.{1}.attn.sr_norm.{2}"),
    (r"^block(\d)\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)$", "encoder.stages.{0}.{1}.mlp.{2}.{3}"),
    (r"^block(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.(weight|bias)$", "encoder.stages.{0}.{1}.mlp.dwconv.{2}"),
    (r"^norm(\d)\.(weight|bias)$", "encoder.norms.{0}.{1}"),
]
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_SEGFORMER_HEAD_RULES: list[tuple[str, str]] = [
    (r"^decode_head\.linear_c(\d)\.proj\.(weight|bias)$", "head.linear_c.{0}.{1}"),
    (r"^decode_head\.linear_fuse\.conv\.weight$", "head.linear_fuse.weight"),
    (rf"^decode_head\.linear_fuse\.bn\.{_BN}$", "head.fuse_bn.{0}"),
    (r"^decode_head\.linear_pred\.(weight|bias)$", "head.classifier.{0}"),
]
_DAFORMER_HEAD_RULES: list[tuple[str, str]] = [
    (r"^decode_head\.embed_layers\.(\d)\.proj\.(weight|bias)$", "head.embed_layers.{0}.{1}"),
    (r"^decode_head\.fuse_layer\.aspp_modules\.(\d)\.conv\.weight$", "head.aspp.{0}.conv.weight"),
    (rf"^decode_head\.fuse_layer\.aspp_modules\.(\d)\.bn\.{_BN}$", "head.aspp.{0}.bn.{1}"),
    (
        r"^decode_head\.fuse_layer\.aspp_modules\.(\d)\.(depthwise|pointwise)_conv\.conv\.weight$",
        "head.aspp.{0}.{1}.conv.weight",
    ),
    (
        rf"^decode_head\.fuse_layer\.aspp_modules\.(\d)\.(depthwise|pointwise)_conv\.bn\.{_BN}$",
        "head.aspp.{0}.{1}.bn.{2}",
    ),
    (r"^decode_head\.fuse_layer\.bottleneck\.conv\.weight$", "head.bottleneck.conv.weight"),
    (rf"^decode_head\.fuse_layer\.bottleneck\.bn\.{_BN}$", "head.bottleneck.bn.{0}"),
    (r"^decode_head\.conv_seg\.(weight|bias)$", "head.classifier.{0}"),
]
_HF_RULES: list[tuple[str, str]] = [
    # hub (save_pretrained) names
    (r"^encoder\.patch_embeddings\.(\d)\.proj\.(weight|bias)$", "encoder.patch_embeds.{0}.proj.{1}"),
    (r"^encoder\.patch_embeddings\.(\d)\.layer_norm\.(weight|bias)$", "encoder.patch_embeds.{0}.norm.{1}"),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.layer_norm_([12])\.(weight|bias)$",
        "encoder.stages.{0}.{1}.norm{2}.{3}",
    ),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.{2}.{3}",
    ),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.attention\.self\.sr\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.sr.{2}",
    ),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.attention\.self\.layer_norm\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.sr_norm.{2}",
    ),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.attention\.output\.dense\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.proj.{2}",
    ),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.mlp\.dense([12])\.(weight|bias)$",
        "encoder.stages.{0}.{1}.mlp.fc{2}.{3}",
    ),
    (
        r"^encoder\.block\.(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.(weight|bias)$",
        "encoder.stages.{0}.{1}.mlp.dwconv.{2}",
    ),
    (r"^encoder\.layer_norm\.(\d)\.(weight|bias)$", "encoder.norms.{0}.{1}"),
    # transformers >= 5 in-memory names
    (r"^stages\.(\d)\.patch_embeddings\.proj\.(weight|bias)$", "encoder.patch_embeds.{0}.proj.{1}"),
    (r"^stages\.(\d)\.patch_embeddings\.layer_norm\.(weight|bias)$", "encoder.patch_embeds.{0}.norm.{1}"),
    (r"^stages\.(\d)\.blocks\.(\d+)\.layernorm_before\.(weight|bias)$", "encoder.stages.{0}.{1}.norm1.{2}"),
    (r"^stages\.(\d)\.blocks\.(\d+)\.layernorm_after\.(weight|bias)$", "encoder.stages.{0}.{1}.norm2.{2}"),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.attention\.(q|k|v)_proj\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.{2}.{3}",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.attention\.o_proj\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.proj.{2}",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.attention\.sequence_reduction\.sequence_reduction\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.sr.{2}",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.attention\.sequence_reduction\.layer_norm\.(weight|bias)$",
        "encoder.stages.{0}.{1}.attn.sr_norm.{2}",
    ),
    (r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)$", "encoder.stages.{0}.{1}.mlp.{2}.{3}"),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.dwconv\.dwconv\.(weight|bias)$",
        "encoder.stages.{0}.{1}.mlp.dwconv.{2}",
    ),
    (r"^stages\.(\d)\.layer_norm\.(weight|bias)$", "encoder.norms.{0}.{1}"),
    # head
    (r"^decode_head\.(?:linear_c|linear_projections)\.(\d)\.proj\.(weight|bias)$", "head.linear_c.{0}.{1}"),
    (r"^decode_head\.linear_fuse\.weight$", "head.linear_fuse.weight"),
    (rf"^decode_head\.batch_norm\.{_BN}$", "head.fuse_bn.{0}"),
    (r"^decode_head\.classifier\.(weight|bias)$", "head.classifier.{0}"),
]
_HF_QKV = {"query": "q", "key": "k", "value": "v"}


@dataclass
class Conversion:
    """Result of mapping a foreign state dict: our keys -> tensors, plus a report of what was dropped."""

    state: dict[str, Any]
    source_format: str
    layer_norm_eps: float
    dropped: list[str] = field(default_factory=list)
    skipped_submodels: list[str] = field(default_factory=list)


def _stage_shift(target: str, one_based: bool) -> str:
    """NVlabs numbers stages/decoder inputs 1..4; ours are 0..3."""
    if not one_based:
        return target
    return re.sub(
        r"^(encoder\.(?:patch_embeds|stages|norms)|head\.linear_c)\.(\d)",
        lambda m: f"{m.group(1)}.{int(m.group(2)) - 1}",
        target,
    )


def map_keys(
    state: dict[str, Any], rules: list[tuple[str, str]], one_based: bool, droppable: dict[str, str]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Apply rename rules. Returns (mapped, dropped-with-reason, unmapped)."""
    compiled = [(re.compile(p), r) for p, r in rules]
    mapped: dict[str, Any] = {}
    dropped: list[str] = []
    unmapped: list[str] = []
    for key, tensor in state.items():
        if key in droppable:
            dropped.append(f"{key} ({droppable[key]})")
            continue
        for pattern, repl in compiled:
            m = pattern.match(key)
            if not m:
                continue
            groups = [_HF_QKV.get(g, g) for g in m.groups()]
            target = repl.format(*groups)
            if target.startswith("KV:"):
                # NVlabs stores keys and values in one Linear: first half k, second half v.
                base, suffix = target[3:].rsplit(".", 1)
                k, v = tensor.chunk(2, dim=0)
                mapped[_stage_shift(f"{base}.k.{suffix}", one_based)] = k
                mapped[_stage_shift(f"{base}.v.{suffix}", one_based)] = v
            else:
                mapped[_stage_shift(target, one_based)] = tensor
            break
        else:
            unmapped.append(key)
    return mapped, dropped, unmapped


def _fail_unmapped(unmapped: list[str], source: str) -> None:
    if unmapped:
        shown = ", ".join(unmapped[:5])
        raise ConversionError(
            f"{len(unmapped)} key(s) of '{source}' map to no edgeseg parameter "
            f"(e.g. {shown}); this architecture is not supported by `edgeseg convert`"
        )


def _torch_load(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with non-tensor globals, not a checkpoint at all
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConversionError(
            f"cannot read '{path}' as a PyTorch checkpoint ({reason}); "
            "is the file complete and a .pth/.bin weights file?"
        ) from None


def _tensor_dict(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    for key in ("state_dict", "model", "module"):
        if (
            isinstance(obj, dict)
            and key in obj
            and isinstance(obj[key], dict)
            and not isinstance(obj[key], torch.Tensor)
        ):
            inner = obj[key]
            if inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ConversionError(
        f"'{path}' holds no tensor state dict (found {type(obj).__name__}); "
        "pass a weights file (state_dict) or a Hugging Face model folder"
    )


def _convert_mmseg_like(state: dict[str, Any], source: str, submodel: str | None) -> Conversion:
    skipped: list[str] = []
    wrapper_prefixes = sorted(
        {k.split(".", 1)[0] for k in state if k.split(".", 1)[0] in ("model", "ema_model", "imnet_model")}
    )
    if wrapper_prefixes:  # DAFormer / MIC UDA wrapper: several networks in one checkpoint
        pick = submodel or "model"
        if pick not in wrapper_prefixes:
            raise ConversionError(
                f"'{source}' has sub-models {wrapper_prefixes}, not '{pick}'; choose one with --submodel"
            )
        skipped = [p for p in wrapper_prefixes if p != pick]
        state = {k[len(pick) + 1 :]: v for k, v in state.items() if k.startswith(pick + ".")}
        fmt = "daformer-uda"
    elif submodel:
        raise ConversionError(f"--submodel given but '{source}' is not a UDA wrapper checkpoint")
    else:
        fmt = "mmseg"
    if any(k.startswith("backbone.") for k in state):
        backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        rest = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    else:
        backbone, rest = state, {}
        fmt = "nvlabs-imagenet"
    droppable = {"head.weight": "ImageNet classifier", "head.bias": "ImageNet classifier"}
    mapped, dropped, unmapped = map_keys(backbone, _NVLABS_RULES, True, droppable)
    if rest:
        is_daformer = any(k.startswith("decode_head.embed_layers") for k in rest)
        rules = _DAFORMER_HEAD_RULES if is_daformer else _SEGFORMER_HEAD_RULES
        head_drop = (
            {}
            if is_daformer
            else {
                "decode_head.conv_seg.weight": "unused by the SegFormer head",
                "decode_head.conv_seg.bias": "unused by the SegFormer head",
            }
        )
        head_mapped, head_dropped, head_unmapped = map_keys(rest, rules, not is_daformer, head_drop)
        mapped.update(head_mapped)
        dropped += head_dropped
        unmapped += head_unmapped
    _fail_unmapped(unmapped, source)
    return Conversion(mapped, fmt, 1e-6, dropped, skipped)


def _convert_hf(folder: Path) -> tuple[Conversion, dict[str, Any]]:
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConversionError(f"cannot read '{config_path}' ({exc})") from None
    if not isinstance(config, dict):
        raise ConversionError(f"'{config_path}' is not a JSON object; not a Hugging Face model config")
    if config.get("model_type") != "segformer":
        raise ConversionError(
            f"'{folder}' is a Hugging Face '{config.get('model_type')}' model, not SegFormer"
        )
    if (folder / "model.safetensors").exists():
        from safetensors.torch import load_file

        try:
            state = load_file(str(folder / "model.safetensors"))
        except Exception as exc:
            raise ConversionError(f"cannot read '{folder / 'model.safetensors'}' ({exc})") from None
    elif (folder / "pytorch_model.bin").exists():
        state = _tensor_dict(_torch_load(folder / "pytorch_model.bin"), folder / "pytorch_model.bin")
    else:
        raise ConversionError(f"'{folder}' has config.json but no model.safetensors or pytorch_model.bin")
    state = {k.removeprefix("segformer."): v for k, v in state.items()}
    droppable = {
        "classifier.weight": "image-classification head",
        "classifier.bias": "image-classification head",
    }
    mapped, dropped, unmapped = map_keys(state, _HF_RULES, False, droppable)
    _fail_unmapped(unmapped, str(folder))
    # transformers builds every LayerNorm with torch's default eps (1e-5), whatever config says.
    return Conversion(mapped, "huggingface", 1e-5, dropped), config


def read_foreign(src: str | Path, submodel: str | None = None) -> tuple[Conversion, dict[str, Any] | None]:
    """Detect the format of `src` and map its keys. Returns the conversion and the HF config if any."""
    src = Path(src)
    if not src.exists():
        raise InputPathError(f"'{src}' does not exist; pass a .pth/.bin file or a Hugging Face model folder")
    if src.is_dir():
        if not (src / "config.json").exists():
            raise ConversionError(
                f"'{src}' is a folder without config.json; expected a Hugging Face model folder"
            )
        return _convert_hf(src)
    if src.suffix == ".safetensors":
        from edgeseg.checkpoint import read_safetensors_header

        header = read_safetensors_header(src)
        if (header.get("__metadata__") or {}).get("format") == '"edgeseg"':
            raise ConversionError(f"'{src}' is already an edgeseg checkpoint; nothing to convert")
        raise ConversionError(
            f"'{src}' is a bare safetensors file; pass the Hugging Face folder that holds it "
            "and its config.json"
        )
    return _convert_mmseg_like(_tensor_dict(_torch_load(src), src), str(src), submodel), None
