"""An inference-only twin of a Segmentor, written for the ONNX graph it will become.

`ExportSegmentor(model)(x)` computes the same logits as `model(x)` (up to float rounding; the parity check
after every export proves it) but in an order and layout that inference runtimes execute faster:

* Token <-> feature-map conversions are written `reshape(B,H,W,C).permute(0,3,1,2)` and
  `permute(0,2,3,1).reshape(B,N,C)`: a 4-D channels-last transpose next to a Conv is fused by ONNX Runtime
  into its NCHWc reorder (`ReorderInput/ReorderOutput channels_last=1`), so the Mix-FFN depth-wise conv,
  the attention's spatial-reduction conv and the patch embeddings cost no separate Transpose.
* Single-head attention (stage 1, where the token count is largest) skips the head split/merge
  transposes entirely; the 1/sqrt(d) scale is folded into the query projection.
* The SegFormer head runs in the cheap order of `SegFormerHead(fused_order=True)` with its BatchNorm also
  folded into the per-stage projections, and the full-resolution sum is arranged so the stride-4
  projection's Conv absorbs the Add and the ReLU (ONNX Runtime's Conv+Sum+Relu fusion).
* `preprocess=True` takes uint8 BGR HWC frames: BGR->RGB is folded into the first conv's weights (exact:
  it only permutes input channels) and mean/std become one multiply-add.

The source model is never modified: folded parameters are new tensors, everything else is shared
read-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) -> (B,H*W,C), written as a 4-D channels-last permute (see module docstring)."""
    b, c = x.shape[0], x.shape[1]
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)


def _map(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B,N,C) -> (B,C,H,W) via channels-last reshape + permute."""
    return t.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)


def _frozen(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone(), requires_grad=False)


class _Sum(torch.autograd.Function):
    """Element-wise sum of several tensors as ONE ONNX `Sum` node (torch would emit a chain of Adds, each
    a full pass over a stride-4 map)."""

    @staticmethod
    def forward(ctx, *xs: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    @staticmethod
    def symbolic(g, *xs):  # noqa: ANN001, ANN205
        return g.op("Sum", *xs)


class _Attention(nn.Module):
    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        dim = attn.q.weight.shape[0]
        self.heads = attn.heads
        self.head_dim = dim // attn.heads
        scale = self.head_dim**-0.5  # what F.scaled_dot_product_attention applies by default
        self.q = nn.Linear(dim, dim)
        self.q.weight = _frozen(attn.q.weight * scale)
        self.q.bias = _frozen(attn.q.bias * scale)
        self.k, self.v, self.proj = attn.k, attn.v, attn.proj
        self.sr_ratio = attn.sr_ratio
        if attn.sr_ratio > 1:
            self.sr, self.sr_norm = attn.sr, attn.sr_norm

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        kv_in = x
        if self.sr_ratio > 1:
            kv_in = self.sr_norm(_tokens(self.sr(_map(x, h, w))))
        q, k, v = self.q(x), self.k(kv_in), self.v(kv_in)
        if self.heads == 1:  # no head split: (B,N,C) @ (B,C,M) directly
            attn = torch.softmax(torch.matmul(q, k.transpose(1, 2)), dim=-1)
            return self.proj(torch.matmul(attn, v))
        b, n, c = x.shape
        q = q.reshape(b, n, self.heads, self.head_dim).permute(0, 2, 1, 3)
        k = k.reshape(b, -1, self.heads, self.head_dim).permute(0, 2, 3, 1)  # already transposed for q @ k
        v = v.reshape(b, -1, self.heads, self.head_dim).permute(0, 2, 1, 3)
        out = torch.matmul(torch.softmax(torch.matmul(q, k), dim=-1), v)
        return self.proj(out.permute(0, 2, 1, 3).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.norm1, self.norm2 = block.norm1, block.norm2
        self.attn = _Attention(block.attn)
        fc1 = block.mlp.fc1
        # fc1 as a 1x1 conv: the feature map is reordered at the narrow width (dim) instead of the
        # 4x wider hidden width, and fc1 + depth-wise conv run back to back in the conv layout.
        self.fc1 = nn.Conv2d(fc1.in_features, fc1.out_features, 1)
        self.fc1.weight = _frozen(fc1.weight[:, :, None, None])
        self.fc1.bias = _frozen(fc1.bias)
        self.dwconv, self.fc2 = block.mlp.dwconv, block.mlp.fc2

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        y = _tokens(self.dwconv(self.fc1(_map(self.norm2(x), h, w))))
        return x + self.fc2(F.gelu(y))


class _Encoder(nn.Module):
    def __init__(self, encoder: nn.Module, first_conv: nn.Conv2d) -> None:
        super().__init__()
        self.convs = nn.ModuleList([first_conv] + [e.proj for e in list(encoder.patch_embeds)[1:]])
        self.embed_norms = nn.ModuleList(e.norm for e in encoder.patch_embeds)
        self.stages = nn.ModuleList(nn.ModuleList(_Block(b) for b in blocks) for blocks in encoder.stages)
        self.norms = encoder.norms

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for conv, embed_norm, blocks, norm in zip(
            self.convs, self.embed_norms, self.stages, self.norms, strict=True
        ):
            x = conv(x)
            h, w = x.shape[2], x.shape[3]
            t = embed_norm(_tokens(x))
            for block in blocks:
                t = block(t, h, w)
            x = _map(norm(t), h, w)
            features.append(x)
        return features


class _FusedSegFormerHead(nn.Module):
    """SegFormerHead with fuse conv, per-stage linears and BatchNorm folded into one 1x1 conv per stage:

        relu(bn(sum_i up(W_i L_i x_i + W_i b_i)))  ==  relu(sum_i up(A_i x_i + a_i))
        with k = gamma / sqrt(var + eps):  A_i = k W_i L_i,  a_i = k W_i b_i  (+ beta - k mu on stage 1).

    Exact because bilinear weights sum to one and the BN shift is added on the stride-4 stage, which is
    never resampled.
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        bn = head.fuse_bn
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - k * bn.running_mean
        self.projections = nn.ModuleList()
        for s, linear in enumerate(head.linear_c):
            block = head._fuse_block(s)
            conv = nn.Conv2d(linear.in_features, block.shape[0], 1)
            conv.weight = _frozen((k[:, None] * (block @ linear.weight))[:, :, None, None])
            conv.bias = _frozen(k * (block @ linear.bias) + (shift if s == 0 else 0.0))
            self.projections.append(conv)
        self.classifier = head.classifier

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        size = (features[0].shape[2], features[0].shape[3])
        resampled = [
            F.interpolate(conv(x), size=size, mode="bilinear", align_corners=False)
            for x, conv in zip(features[1:], list(self.projections)[1:], strict=True)
        ]
        # stride-4 conv last, added to the resampled sum: Conv + Add + Relu fuse into one kernel.
        fused = self.projections[0](features[0])
        if resampled:
            fused = fused + (_Sum.apply(*resampled) if len(resampled) > 1 else resampled[0])
        return self.classifier(F.relu(fused))


class ExportSegmentor(nn.Module):
    """`forward(x)` -> logits (B,C,h/4,w/4) or probs; `preprocess=True` takes uint8 BGR (B,H,W,3) frames."""

    def __init__(self, model: nn.Module, output: str = "logits", preprocess: bool = False) -> None:
        super().__init__()
        from edgeseg.models.heads import SegFormerHead

        if output not in ("logits", "probs"):
            # labels are appended as graph nodes after export (see onnx_export.append_labels_head)
            raise ValueError(f"ExportSegmentor computes logits or probs, not {output!r}")
        self.output = output
        self.preprocess = preprocess
        self.num_classes = model.num_classes
        first = model.encoder.patch_embeds[0].proj
        if preprocess:
            mean = torch.tensor(model.meta.get("mean", (123.675, 116.28, 103.53)), dtype=torch.float32)
            std = torch.tensor(model.meta.get("std", (58.395, 57.12, 57.375)), dtype=torch.float32)
            # frames arrive BGR: per-channel constants in BGR order, conv input channels flipped to match
            self.register_buffer("scale", (1.0 / std).flip(0), persistent=False)
            self.register_buffer("shift", (-mean / std).flip(0), persistent=False)
            conv = nn.Conv2d(
                first.in_channels, first.out_channels, first.kernel_size, first.stride, first.padding
            )
            conv.weight = _frozen(first.weight.flip(1))
            conv.bias = _frozen(first.bias)
            first = conv
        self.encoder = _Encoder(model.encoder, first)
        self.head = _FusedSegFormerHead(model.head) if isinstance(model.head, SegFormerHead) else model.head
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess:
            x = (x.float() * self.scale + self.shift).permute(0, 3, 1, 2)
        logits = self.head(self.encoder(x))
        return torch.softmax(logits, dim=1) if self.output == "probs" else logits


class OpenVINOSegmentor(nn.Module):
    """The graph for OpenVINO (`edgeseg export --for openvino`): the model's own forward, unchanged.

    OpenVINO's CPU transformations match the plain transformer patterns (MatMul + bias, head split
    Reshape/Transpose, Softmax, LayerNorm, Linear -> GELU) and fuse them, with bf16 and INT8 kernels; the
    ONNX Runtime re-ordering of `ExportSegmentor` (channels-last permutes, fc1 as a 1x1 conv, the Sum
    node) defeats those fusions: measured 1.5-2x slower in OpenVINO (benchmarks/export.py).
    `preprocess=True`: uint8 BGR (B,H,W,3) in, normalised and flipped to RGB inside the graph.
    """

    def __init__(self, model: nn.Module, output: str = "logits", preprocess: bool = False) -> None:
        super().__init__()
        if output not in ("logits", "probs"):
            raise ValueError(f"OpenVINOSegmentor computes logits or probs, not {output!r}")
        self.model, self.output, self.preprocess = model, output, preprocess
        mean = torch.tensor(model.meta.get("mean", (123.675, 116.28, 103.53)), dtype=torch.float32)
        std = torch.tensor(model.meta.get("std", (58.395, 57.12, 57.375)), dtype=torch.float32)
        self.register_buffer("scale", (1.0 / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess:
            x = x.permute(0, 3, 1, 2).flip(1).float() * self.scale + self.shift
        logits = self.model(x)
        return torch.softmax(logits, dim=1) if self.output == "probs" else logits


def reference_output(model: nn.Module, x: torch.Tensor, output: str) -> torch.Tensor:
    """What the PyTorch model itself says, for parity checks: `x` is the normalised NCHW input.

    labels = argmax of the logits bilinearly upsampled to the input size (what evaluation does).
    """
    with torch.inference_mode():
        logits = model(x)
        if output == "logits":
            return logits
        if output == "probs":
            return torch.softmax(logits, dim=1)
        up = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return up.argmax(1).to(torch.uint8 if model.num_classes <= 256 else torch.int32)
