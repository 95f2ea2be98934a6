"""Decode heads: the SegFormer all-MLP head and the DAFormer context-aware fusion head.

Both take the four encoder feature maps (strides 4/8/16/32) and return logits at stride 4.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _upsample(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SegFormerHead(nn.Module):
    """All-MLP decoder: per-stage linear to `embed_dim`, upsample, concat, 1x1 fuse + BN + ReLU, classify.

    Parameters are those of the standard head (`linear_c`, `linear_fuse` over the channel concat in
    reversed stage order c4,c3,c2,c1, `fuse_bn`, `classifier`), so imports and merges see the usual keys.

    `fused_order=True` (default) computes the same function in a cheaper order: the fuse conv is linear per
    pixel and bilinear upsampling is linear with weights summing to one, so
        W @ concat_i(up(L_i x_i + b_i)) = sum_i up((W_i L_i) x_i + W_i b_i),
    where W_i is the block of the fuse weight that multiplies stage i. Each stage is projected straight to
    `embed_dim` at its own low resolution and only `embed_dim` channels are upsampled and summed, instead
    of upsampling four maps and running a 1x1 conv over 4*embed_dim channels at stride 4.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        embed_dim: int,
        num_classes: int,
        dropout: float = 0.1,
        fused_order: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.fused_order = fused_order
        self.linear_c = nn.ModuleList(nn.Linear(c, embed_dim) for c in in_channels)
        self.linear_fuse = nn.Conv2d(embed_dim * len(in_channels), embed_dim, 1, bias=False)
        self.fuse_bn = nn.BatchNorm2d(embed_dim)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)

    def _fuse_block(self, stage: int) -> torch.Tensor:
        """Columns of the fuse weight that act on stage `stage` (concat order is c4, c3, c2, c1)."""
        n = len(self.linear_c)
        e = self.embed_dim
        col = (n - 1 - stage) * e
        return self.linear_fuse.weight[:, col : col + e, 0, 0]

    def fuse(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fused pre-BN features at stride 4 (B, embed_dim, H/4, W/4)."""
        size = features[0].shape[-2:]
        if not self.fused_order:
            projected = []
            for x, linear in zip(features, self.linear_c, strict=True):
                y = linear(x.flatten(2).transpose(1, 2)).transpose(1, 2)
                projected.append(_upsample(y.reshape(x.shape[0], -1, *x.shape[-2:]), size))
            return self.linear_fuse(torch.cat(projected[::-1], dim=1))
        out = None
        for s, (x, linear) in enumerate(zip(features, self.linear_c, strict=True)):
            block = self._fuse_block(s)
            weight = (block @ linear.weight)[:, :, None, None]
            y = _upsample(F.conv2d(x, weight, block @ linear.bias), size)
            out = y if out is None else out + y
        return out

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = F.relu(self.fuse_bn(self.fuse(features)))
        return self.classifier(self.dropout(x))


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1, groups: int = 1) -> None:
        pad = dilation * (kernel // 2)
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)


class SeparableConvBNReLU(nn.Module):
    """Depth-wise (dilated 3x3) then point-wise conv, each with BN + ReLU (mmcv's DepthwiseSeparableConv)."""

    def __init__(self, cin: int, cout: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU(cin, cin, 3, dilation=dilation, groups=cin)
        self.pointwise = ConvBNReLU(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DAFormerHead(nn.Module):
    """DAFormer's context-aware fusion: per-stage linear embed, upsample, concat (c1..c4), then an
    ASPP-style block of depth-wise separable convs with dilations 1/6/12/18 (1 -> plain 1x1), a 3x3
    bottleneck, and the classifier (Hoyer et al., CVPR 2022, Tab. 7 "sep. ASPP")."""

    def __init__(
        self,
        in_channels: Sequence[int],
        embed_dim: int,
        num_classes: int,
        dilations: Sequence[int] = (1, 6, 12, 18),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        cat = embed_dim * len(in_channels)
        self.embed_layers = nn.ModuleList(nn.Linear(c, embed_dim) for c in in_channels)
        self.aspp = nn.ModuleList(
            ConvBNReLU(cat, embed_dim, 1) if d == 1 else SeparableConvBNReLU(cat, embed_dim, d)
            for d in dilations
        )
        self.bottleneck = ConvBNReLU(embed_dim * len(dilations), embed_dim, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        embedded = []
        for x, linear in zip(features, self.embed_layers, strict=True):
            y = linear(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape[0], -1, *x.shape[-2:])
            embedded.append(_upsample(y, size))
        x = torch.cat(embedded, dim=1)
        x = self.bottleneck(torch.cat([branch(x) for branch in self.aspp], dim=1))
        return self.classifier(self.dropout(x))
