"""Segmentor = encoder + decode head. `model(x)` -> logits at stride 4; `forward_features` for distillation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Segmentor(nn.Module):
    """A semantic segmenter.

    Contract: `forward(x)` takes a normalised float tensor (B,3,H,W) (RGB, mean/std from `meta`) and
    returns logits (B, num_classes, H/4, W/4). `forward_features(x)` returns the encoder's four feature
    maps, and `forward_with_features(x)` both, for feature distillation.
    `arch` is the registry name; `meta` carries classes, palette, mean/std and provenance.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        arch: str,
        num_classes: int,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.arch = arch
        self.num_classes = num_classes
        self.meta: dict[str, Any] = dict(meta or {})

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = self.encoder(x)
        return self.head(features), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
