"""Multi-head checkpoints: one shared (merged) encoder and one decode head per target domain.

This is the "backbone-only" merge of Li et al. (ECCV 2024, Tab. 1, rows marked with a dagger): the
encoders of the domain-adapted models are merged, every model keeps its own head.

File format (an ordinary edgeseg safetensors checkpoint):
    metadata  kind = "multihead", heads = ["city", "night", ...] (domain names, output order),
              arch / num_classes / arch_overrides / classes / palette / mean / std as for a segmentor
              (every head has the segmentor architecture `arch`), provenance.merge = how it was made.
    tensors   encoder.*                the shared encoder, keys as in a segmentor
              heads.<domain>.*         that domain's head; `heads.<d>.X` is the segmentor's `head.X`

`load_multihead(path)` builds a `MultiHeadSegmentor`: `forward(x)` runs the encoder once and returns a
tuple of logits, one per domain in `heads` order (export traces this into one ONNX graph whose outputs are
named `logits_<domain>`); `domain_model(d)` is a plain `Segmentor` for one domain (sharing the encoder),
and `split_multihead` writes one ordinary segmentor checkpoint per domain.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeseg.errors import CheckpointError, ConfigError
from edgeseg.models.layout import part

MULTIHEAD_KIND = "multihead"
HEADS_PREFIX = "heads."
_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def validate_domain_names(names: Sequence[str]) -> list[str]:
    names = [str(n) for n in names]
    for name in names:
        if not _DOMAIN_NAME.match(name) or hasattr(nn.ModuleDict(), name):
            raise ConfigError(
                f"domain name '{name}' cannot name a head: use letters, digits, '_' or '-' "
                "(and not a Python attribute such as 'keys' or 'train')"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"domain names {names} repeat; every head needs its own name")
    return names


def head_key(domain: str, segmentor_key: str) -> str:
    """'head.classifier.weight' of domain 'night' -> 'heads.night.classifier.weight'."""
    if part(segmentor_key) != "head":
        raise ValueError(f"'{segmentor_key}' is not a head tensor")
    return f"{HEADS_PREFIX}{domain}.{segmentor_key[len('head.') :]}"


class MultiHeadSegmentor(nn.Module):
    """Shared encoder + one head per domain; forward returns one logits tensor per domain."""

    def __init__(
        self,
        encoder: nn.Module,
        heads: dict[str, nn.Module],
        arch: str,
        num_classes: int,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        self.domains = list(heads)
        self.arch = arch
        self.num_classes = num_classes
        self.meta: dict[str, Any] = dict(meta or {})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.encoder(x)
        return tuple(self.heads[d](features) for d in self.domains)

    def forward_domain(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.heads[self._check(domain)](self.encoder(x))

    def domain_model(self, domain: str):
        """A `Segmentor` for one domain; its modules are shared with this model (no copy)."""
        from edgeseg.models.segmentor import Segmentor

        meta = {k: v for k, v in self.meta.items() if k != "heads"}
        meta.update(kind="segmentor", domain=domain)
        model = Segmentor(self.encoder, self.heads[self._check(domain)], self.arch, self.num_classes, meta)
        model.arch_overrides = dict(getattr(self, "arch_overrides", {}))
        return model

    def output_names(self) -> list[str]:
        return [f"logits_{d}" for d in self.domains]

    def _check(self, domain: str) -> str:
        if domain not in self.heads:
            raise ConfigError(
                f"this model has no head for domain '{domain}'; heads: {', '.join(self.domains)}"
            )
        return domain


def build_multihead(meta: dict[str, Any]) -> MultiHeadSegmentor:
    """An un-initialised-weights multi-head model matching checkpoint metadata."""
    from edgeseg.models.registry import create_model

    domains = validate_domain_names(meta.get("heads") or [])
    if not domains:
        raise CheckpointError("multi-head checkpoint metadata lists no heads")
    overrides = meta.get("arch_overrides", {}) or {}
    base = create_model(meta["arch"], num_classes=meta["num_classes"], **overrides)
    heads = {d: copy.deepcopy(base.head) for d in domains}
    keep = {
        k: v
        for k, v in meta.items()
        if k not in ("format", "format_version", "arch", "num_classes", "arch_overrides")
    }
    model = MultiHeadSegmentor(base.encoder, heads, meta["arch"], meta["num_classes"], keep)
    model.arch_overrides = dict(overrides)
    return model


def load_multihead(path: str | os.PathLike[str]) -> MultiHeadSegmentor:
    """Load a multi-head checkpoint (eval mode), strictly: every key and shape must fit."""
    from edgeseg.checkpoint import load_state, load_state_strict

    state, meta = load_state(path)
    if meta.get("kind") != MULTIHEAD_KIND:
        raise CheckpointError(f"'{path}' is a {meta.get('kind')} checkpoint, not a multi-head one")
    model = build_multihead(meta)
    load_state_strict(model, state, str(path))
    return model.eval()


def load_any_model(path: str | os.PathLike[str]):
    """A Segmentor for kind 'segmentor', a MultiHeadSegmentor for kind 'multihead'."""
    from edgeseg.checkpoint import load_model, read_checkpoint_meta

    if read_checkpoint_meta(path).get("kind") == MULTIHEAD_KIND:
        return load_multihead(path)
    return load_model(path)


def split_multihead(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write one segmentor checkpoint per domain (`<stem>_<domain>.safetensors`), for per-domain export."""
    from edgeseg.checkpoint import save_model
    from edgeseg.io_utils import staged_dir

    model = load_multihead(path)
    names = {domain: f"{Path(path).stem}_{domain}.safetensors" for domain in model.domains}
    with staged_dir(out_dir) as stage:  # all heads or none: a failure leaves no folder and no partial set
        for domain, name in names.items():
            save_model(model.domain_model(domain), stage / name)
    return [Path(out_dir) / name for name in names.values()]
