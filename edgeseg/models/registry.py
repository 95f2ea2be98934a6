"""Model registry: each entry is a plain function whose only body is a small spec (timm style).

create_model("segformer_b0", num_classes=19)
list_models("segformer_*")
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeseg.errors import ConfigError

# Published MiT specs (SegFormer, Tab. 6 / NVlabs mix_transformer.py).
_DIMS_B0 = (32, 64, 160, 256)
_DIMS_B1_B5 = (64, 128, 320, 512)
MIT_DEPTHS = {
    "b0": (2, 2, 2, 2),
    "b1": (2, 2, 2, 2),
    "b2": (3, 4, 6, 3),
    "b3": (3, 4, 18, 3),
    "b4": (3, 8, 27, 3),
    "b5": (3, 6, 40, 3),
}


@dataclass(frozen=True)
class ModelSpec:
    """What `create_model` builds: an MiT encoder spec plus a decode head kind and width."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    head: str  # "segformer" | "daformer"
    head_embed: int
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    drop_path_rate: float = 0.1
    layer_norm_eps: float = 1e-6
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, Callable[[], ModelSpec]] = {}


def register_model(fn: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
    _REGISTRY[fn.__name__] = fn
    return fn


def _mit(variant: str, head: str, embed: int) -> ModelSpec:
    dims = _DIMS_B0 if variant == "b0" else _DIMS_B1_B5
    return ModelSpec(embed_dims=dims, depths=MIT_DEPTHS[variant], head=head, head_embed=embed)


@register_model
def segformer_b0() -> ModelSpec:
    return _mit("b0", "segformer", 256)


@register_model
def segformer_b1() -> ModelSpec:
    return _mit("b1", "segformer", 256)


@register_model
def segformer_b2() -> ModelSpec:
    return _mit("b2", "segformer", 768)


@register_model
def segformer_b3() -> ModelSpec:
    return _mit("b3", "segformer", 768)


@register_model
def segformer_b4() -> ModelSpec:
    return _mit("b4", "segformer", 768)


@register_model
def segformer_b5() -> ModelSpec:
    return _mit("b5", "segformer", 768)


@register_model
def daformer_b0() -> ModelSpec:
    return _mit("b0", "daformer", 256)


@register_model
def daformer_b5() -> ModelSpec:
    return _mit("b5", "daformer", 256)


@register_model
def segformer_tiny() -> ModelSpec:
    """A few-thousand-parameter model with the full structure, for fast tests."""
    return ModelSpec(
        embed_dims=(8, 16, 32, 32),
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        head="segformer",
        head_embed=32,
    )


@register_model
def daformer_tiny() -> ModelSpec:
    return ModelSpec(
        embed_dims=(8, 16, 32, 32),
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        head="daformer",
        head_embed=16,
    )


@register_model
def segformer_small() -> ModelSpec:
    """B0-shaped but thinner/shallower, for the CPU synthetic benchmark's large/small pairs."""
    return ModelSpec(
        embed_dims=(16, 32, 64, 128),
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 4),
        head="segformer",
        head_embed=64,
    )


@register_model
def segformer_b0_d1() -> ModelSpec:
    """The CPU student: MiT-B0 widths and heads with one block per stage (B0: two), all-MLP head 128 wide
    (B0: 256). 2.04 M parameters; segformer_b1 (13.7 M) is 6.7x larger, the large model of the synthetic
    presets. Train step at 96x192, batch 4, one thread: ~0.06 s (B1: ~0.32 s)."""
    return ModelSpec(embed_dims=_DIMS_B0, depths=(1, 1, 1, 1), head="segformer", head_embed=128)


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_spec(name: str, **overrides: Any) -> ModelSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model '{name}'; available: {', '.join(list_models())}")
    spec = _REGISTRY[name]()
    unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelSpec)}
    if unknown:
        raise ConfigError(f"unknown model option(s) {sorted(unknown)} for '{name}'")
    return dataclasses.replace(spec, **overrides) if overrides else spec


def create_model(
    name: str,
    num_classes: int = 19,
    *,
    fused_head: bool = True,
    meta: dict[str, Any] | None = None,
    **overrides: Any,
):
    """Build a randomly initialised model. `overrides` change spec fields (e.g. layer_norm_eps) and are
    recorded on the model so a checkpoint rebuilds exactly the same network."""
    from edgeseg.models.heads import DAFormerHead, SegFormerHead
    from edgeseg.models.mit import MiTSpec, MixVisionTransformer
    from edgeseg.models.segmentor import Segmentor

    spec = model_spec(name, **overrides)
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    encoder = MixVisionTransformer(
        MiTSpec(
            embed_dims=spec.embed_dims,
            depths=spec.depths,
            num_heads=spec.num_heads,
            sr_ratios=spec.sr_ratios,
            drop_path_rate=spec.drop_path_rate,
            layer_norm_eps=spec.layer_norm_eps,
        )
    )
    if spec.head == "segformer":
        head = SegFormerHead(spec.embed_dims, spec.head_embed, num_classes, fused_order=fused_head)
    elif spec.head == "daformer":
        head = DAFormerHead(spec.embed_dims, spec.head_embed, num_classes)
    else:  # pragma: no cover - registry entries are ours
        raise ConfigError(f"unknown head kind '{spec.head}'")
    model = Segmentor(encoder, head, arch=name, num_classes=num_classes, meta=meta)
    model.arch_overrides = dict(overrides)
    return model
