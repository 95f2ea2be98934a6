"""Mix Transformer (MiT) encoders B0..B5, as in SegFormer (Xie et al., NeurIPS 2021).

Four stages, each: overlapping patch embedding (7/3/3/3 conv, strides 4/2/2/2) -> N transformer blocks
with efficient self-attention (keys/values spatially reduced by sr_ratio 8/4/2/1) and a Mix-FFN
(fc -> 3x3 depth-wise conv -> GELU -> fc) -> LayerNorm. Stages are a loop over ModuleLists.

Parameter names (`patch_embeds.{s}`, `stages.{s}.{b}`, `norms.{s}`) encode the true depth of every
layer (stage, block); layer-wise merging relies on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MiTSpec:
    """Hyper-parameters of one MiT encoder. Published B0..B5 values live in the registry."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: float = 4.0
    patch_sizes: tuple[int, int, int, int] = (7, 3, 3, 3)
    strides: tuple[int, int, int, int] = (4, 2, 2, 2)
    in_chans: int = 3
    drop_path_rate: float = 0.1
    # NVlabs/mmseg use eps=1e-6 in block and stage norms; Hugging Face uses the torch default 1e-5.
    # Converted checkpoints record which one their weights were trained with.
    layer_norm_eps: float = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample during training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride, padding=patch // 2)
        self.norm = nn.LayerNorm(dim)  # eps 1e-5 in every reference implementation

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, H, W) feature map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a sr_ratio-times reduced token grid."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.sr_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, d).transpose(1, 2)
        kv_in = x
        if self.sr_ratio > 1:
            kv_in = self.sr_norm(self.sr(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2))
        m = kv_in.shape[1]
        k = self.k(kv_in).reshape(b, m, self.heads, d).transpose(1, 2)
        v = self.v(kv_in).reshape(b, m, self.heads, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)
        x = self.dwconv(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, sr_ratio: int, mlp_ratio: float, drop_path: float, eps: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixVisionTransformer(nn.Module):
    """MiT encoder: image (B,3,H,W) -> four feature maps at strides 4, 8, 16, 32."""

    def __init__(self, spec: MiTSpec) -> None:
        super().__init__()
        self.spec = spec
        total = sum(spec.depths)
        # linearly increasing stochastic-depth rate over all blocks (plain Python: works on the meta device)
        rates = [spec.drop_path_rate * i / (total - 1) for i in range(total)] if total > 1 else [0.0]
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        start = 0
        in_chans = spec.in_chans
        for s in range(4):
            dim = spec.embed_dims[s]
            self.patch_embeds.append(OverlapPatchEmbed(in_chans, dim, spec.patch_sizes[s], spec.strides[s]))
            self.stages.append(
                nn.ModuleList(
                    Block(
                        dim,
                        spec.num_heads[s],
                        spec.sr_ratios[s],
                        spec.mlp_ratio,
                        rates[start + i],
                        spec.layer_norm_eps,
                    )
                    for i in range(spec.depths[s])
                )
            )
            self.norms.append(nn.LayerNorm(dim, eps=spec.layer_norm_eps))
            start += spec.depths[s]
            in_chans = dim
        self.apply(_init_weights)

    @property
    def out_channels(self) -> tuple[int, int, int, int]:
        return self.spec.embed_dims

    @property
    def min_input_size(self) -> int:
        """The smallest height/width the encoder takes: each stage's token grid must cover its
        spatial-reduction kernel (32 for every MiT: 8 at stride 4, ..., 1 at stride 32)."""
        side, stride = 1, 1
        for s in range(4):
            stride *= self.spec.strides[s]
            side = max(side, stride * self.spec.sr_ratios[s])
        return side

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()):
            h, w = int(x.shape[-2]), int(x.shape[-1])
            if min(h, w) < self.min_input_size:
                from edgeseg.errors import ConfigError

                raise ConfigError(
                    f"input {h}x{w} is smaller than the network's minimum of {self.min_input_size}x"
                    f"{self.min_input_size} pixels (its stride); use larger images or a larger --size"
                )
        features = []
        for embed, blocks, norm in zip(self.patch_embeds, self.stages, self.norms, strict=True):
            x, h, w = embed(x)
            for block in blocks:
                x = block(x, h, w)
            x = tokens_to_map(norm(x), h, w)
            features.append(x)
        return features


def _init_weights(m: nn.Module) -> None:
    """SegFormer's initialisation: truncated normal for linears, fan-out normal for convs."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
