"""The model contract: what the rest of edgeseg may know about a model's parameter names.

One model family exists (MiT encoder + SegFormer/DAFormer head, `edgeseg.models.registry`), and its parameter
layout is known here only. Subsystems ask this module instead of parsing names themselves (timm's
`group_matcher` / `no_weight_decay` hooks, kept as functions until a second family exists):

- depth order (layer-wise merging):       `layer_id(key)`, `layer_name(key)`
- encoder / head split (merging):          `part(key)` -> "encoder" | "head" | "other"
- optimiser groups (distill, pretrain):    `param_kind(name)` -> "head" | "norm" | "other"

The export twin (`edgeseg.deploy.export.export_model.ExportSegmentor`) is the family's export hook: it walks
the modules (patch embeddings, blocks, norms, head), not parameter names.

The names, for a registered model:

    encoder.patch_embeds.{s}.*   overlapping patch embedding before the blocks of stage s
    encoder.stages.{s}.{b}.*     transformer block b of stage s
    encoder.norms.{s}.*          the LayerNorm after the blocks of stage s
    head.*                       the decode head (one layer in depth order: it comes last)
"""

from __future__ import annotations

import re
from typing import Literal

from edgeseg.errors import ModelMismatchError

ParamKind = Literal["head", "norm", "other"]
Part = Literal["encoder", "head", "other"]
HEAD_STAGE = 1 << 30  # sorts after every encoder stage

_PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^encoder\.patch_embeds\.(\d+)\."), 0),
    (re.compile(r"^encoder\.stages\.(\d+)\.(\d+)\."), 1),
    (re.compile(r"^encoder\.norms\.(\d+)\."), 2),
)


def part(key: str) -> Part:
    """Which part of a segmentor's state dict a key belongs to (backbone merging keeps heads apart)."""
    if key.startswith("encoder."):
        return "encoder"
    if key.startswith("head."):
        return "head"
    return "other"


def is_head(name: str) -> bool:
    """A decode-head parameter (also inside a wrapper: 'student.head.x')."""
    return name.startswith("head.") or ".head." in name


def param_kind(name: str) -> ParamKind:
    """mmcv's paramwise rules as DAFormer uses them: the head (its own lr), norms (no weight decay), the rest."""
    if is_head(name):
        return "head"
    if "norm" in name:
        return "norm"
    return "other"


def layer_id(key: str) -> tuple[int, int, int]:
    """(stage, position, block) giving `key`'s true depth in the network; the head sorts last."""
    if key.startswith("head."):
        return (HEAD_STAGE, 0, 0)
    for pattern, position in _PATTERNS:
        m = pattern.match(key)
        if m:
            groups = [int(g) for g in m.groups()]
            return (groups[0], position, groups[1] if len(groups) > 1 else 0)
    raise ModelMismatchError(
        f"cannot place tensor '{key}' in depth order: it is not in the edgeseg MiT layout "
        "(encoder.patch_embeds/stages/norms.*, head.*)"
    )


def layer_name(key: str) -> str:
    """The layer `key` belongs to, e.g. 'encoder.stages.2.5' or 'head'."""
    stage, position, block = layer_id(key)
    if stage == HEAD_STAGE:
        return "head"
    return (f"encoder.patch_embeds.{stage}", f"encoder.stages.{stage}.{block}", f"encoder.norms.{stage}")[
        position
    ]
