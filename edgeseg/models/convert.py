"""`edgeseg convert`: foreign weights -> an edgeseg checkpoint, with the architecture inferred from shapes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import ConversionError
from edgeseg.models.pretrained import Conversion, read_foreign
from edgeseg.models.registry import list_models, model_spec


@dataclass(frozen=True)
class ConvertReport:
    out: str
    arch: str
    kind: str  # "segmentor" | "encoder"
    num_classes: int
    source_format: str
    num_tensors: int
    dropped: list[str]
    skipped_submodels: list[str]


def infer_shape_facts(state: dict[str, Any]) -> dict[str, Any]:
    """Encoder dims/depths, head kind/width and class count, read off tensor shapes."""
    try:
        dims = tuple(int(state[f"encoder.patch_embeds.{s}.proj.weight"].shape[0]) for s in range(4))
    except KeyError as exc:
        raise ConversionError(
            f"weights have no MiT stage {exc.args[0].split('.')[2]} patch embedding; "
            "not a 4-stage MiT/SegFormer checkpoint"
        ) from None
    depths = tuple(
        len({int(m.group(1)) for k in state if (m := re.match(rf"encoder\.stages\.{s}\.(\d+)\.", k))})
        for s in range(4)
    )
    if "head.linear_fuse.weight" in state:
        head, embed = "segformer", int(state["head.linear_c.0.weight"].shape[0])
    elif "head.bottleneck.conv.weight" in state:
        head, embed = "daformer", int(state["head.embed_layers.0.weight"].shape[0])
    else:
        head, embed = None, None
    classes = int(state["head.classifier.weight"].shape[0]) if "head.classifier.weight" in state else None
    return {"dims": dims, "depths": depths, "head": head, "embed": embed, "num_classes": classes}


def match_architecture(facts: dict[str, Any], num_heads: tuple[int, ...] | None) -> str:
    for name in list_models():
        spec = model_spec(name)
        if spec.embed_dims != facts["dims"] or spec.depths != facts["depths"]:
            continue
        if num_heads is not None and tuple(spec.num_heads) != tuple(num_heads):
            continue
        if facts["head"] is None:
            if spec.head == "segformer":
                return name
            continue
        if spec.head == facts["head"] and spec.head_embed == facts["embed"]:
            return name
    raise ConversionError(
        f"weights look like MiT dims={facts['dims']} depths={facts['depths']} head={facts['head']}"
        f"(width {facts['embed']}), which matches no edgeseg architecture (see `edgeseg info --list`)"
    )


def _hf_class_names(config: dict[str, Any] | None, num_classes: int) -> list[str] | None:
    if not config or "id2label" not in config:
        return None
    names = [str(config["id2label"].get(str(i), "")) for i in range(num_classes)]
    if all(n == f"LABEL_{i}" or not n for i, n in enumerate(names)):
        return None
    return names


@contextlib.contextmanager
def _foreign_structure(src: str | Path) -> Iterator[None]:
    """A foreign file with an unexpected layout (a missing head key, a list where a dict belongs, a scalar
    where a weight matrix belongs) is one ConversionError line, not a KeyError from deep inside."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ConversionError(
            f"'{src}' does not have the structure of a MiT/SegFormer checkpoint ({what[:160]}); "
            "pass the original weights file or Hugging Face folder"
        ) from exc


def convert_checkpoint(
    src: str | Path, out: str | Path, num_classes: int | None = None, submodel: str | None = None
) -> ConvertReport:
    """Import `src` strictly and write `out` (atomically; nothing is written on failure)."""
    from edgeseg import __version__
    from edgeseg.checkpoint import load_state_strict, model_meta, save_state
    from edgeseg.io_utils import sha256_file
    from edgeseg.models.registry import create_model

    conv: Conversion
    conv, hf_config = read_foreign(src, submodel)
    with _foreign_structure(src):  # shapes, keys and config fields of a foreign file are not ours to trust
        facts = infer_shape_facts(conv.state)
        heads = tuple(int(h) for h in hf_config["num_attention_heads"]) if hf_config else None
        arch = match_architecture(facts, heads)
        src_classes = facts["num_classes"]
        n_classes = num_classes or src_classes or 19
        dropped = list(conv.dropped)
        state = dict(conv.state)
        if src_classes is not None and n_classes != src_classes:
            for key in ("head.classifier.weight", "head.classifier.bias"):
                state.pop(key)
            dropped.append(f"head.classifier ({src_classes} classes -> {n_classes}: re-initialised)")
        names = _hf_class_names(hf_config, n_classes) if src_classes == n_classes else None
    spec = model_spec(arch)
    overrides = {"layer_norm_eps": conv.layer_norm_eps} if conv.layer_norm_eps != spec.layer_norm_eps else {}
    model = create_model(arch, num_classes=n_classes, **overrides)
    kind = "segmentor" if facts["head"] else "encoder"
    if kind == "encoder":
        load_state_strict(model.encoder, state, str(src), prefix="encoder.")
        to_save = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    else:
        own = model.state_dict()
        if "head.classifier.weight" not in state:  # classifier re-initialised on purpose
            state.update({k: own[k] for k in ("head.classifier.weight", "head.classifier.bias")})
        load_state_strict(model, state, str(src))
        to_save = model.state_dict()
    src_path = Path(src)
    weights_file = (
        next(
            (p for p in (src_path / "model.safetensors", src_path / "pytorch_model.bin") if p.exists()),
            src_path,
        )
        if src_path.is_dir()
        else src_path
    )
    meta = model_meta(
        model,
        kind=kind,
        classes=names,
        provenance={
            "source": str(src),
            "source_format": conv.source_format,
            "source_sha256": sha256_file(weights_file),
            "dropped": dropped,
            "skipped_submodels": conv.skipped_submodels,
            "converted_by": f"edgeseg {__version__}",
        },
    )
    save_state(to_save, out, meta)
    return ConvertReport(
        str(out), arch, kind, n_classes, conv.source_format, len(to_save), dropped, conv.skipped_submodels
    )
