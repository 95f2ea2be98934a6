"""Pseudo-labels from teacher predictions: confidence weighting, ignore margins, multi-teacher fusion.

For teacher class probabilities p (B,C,H,W) at image resolution, the pseudo-label is y = argmax_c p and its
confidence q = max_c p. The per-pixel weight w depends on `weighting`:
    quality    w = |{q >= tau}| / |pixels|            (DAFormer: one scalar per batch, or per image)
    threshold  w = [q >= tau]                          (FixMatch-style hard mask)
    confidence w = q
    none       w = 1
then w = 0 inside the ignore margins (DAFormer ignores the top 15 / bottom 120 rows of Cityscapes crops:
the ego-vehicle bonnet and rectification border have no source counterpart).

Multi-teacher fusion of K teachers' probabilities p_k into one distribution, per pixel:
    mean        p = sum_k a_k p_k / sum_k a_k                 (a_k fixed, default equal)
    confidence  p = sum_k q_k p_k / sum_k q_k                 (q_k = max_c p_k: trust whoever is sure)
    max         p = p_{k*},  k* = argmax_k q_k                (most confident teacher only)
    agree       p = mean_k p_k, and w *= [all argmax_c p_k equal]   (keep pixels the teachers agree on)
The same per-pixel teacher weights also fuse temperature-softened probabilities for the KL term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour label (or mask) down-sampling to `size`, taking the centre pixel of each cell."""
    h, w = labels.shape[-2:]
    if (h, w) == tuple(size):
        return labels
    fh, fw = h // size[0], w // size[1]
    if fh * size[0] == h and fw * size[1] == w:
        return labels[..., fh // 2 :: fh, fw // 2 :: fw].contiguous()
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].to(labels.dtype)


def pseudo_labels(
    probs: torch.Tensor, threshold: float = 0.968, weighting: str = "quality", scope: str = "batch"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (B,H,W) int64, weights (B,H,W) float) from class probabilities (B,C,H,W)."""
    confidence, labels = probs.max(dim=1)
    confident = (confidence >= threshold).float()
    if weighting == "quality":
        if scope == "batch":
            weights = confident.mean().expand_as(confidence).clone()
        elif scope == "image":
            weights = confident.mean(dim=(1, 2), keepdim=True).expand_as(confidence).clone()
        else:
            raise ValueError(f"unknown quality scope {scope!r}")
    elif weighting == "threshold":
        weights = confident
    elif weighting == "confidence":
        weights = confidence.clone()
    elif weighting == "none":
        weights = torch.ones_like(confidence)
    else:
        raise ValueError(f"unknown pseudo-label weighting {weighting!r}")
    return labels, weights


def apply_ignore_margins(
    weights: torch.Tensor, top: int = 0, bottom: int = 0, left: int = 0, right: int = 0
) -> torch.Tensor:
    """Zero the pseudo-label weight in border strips (pixels); returns a new tensor."""
    out = weights.clone()
    h, w = out.shape[-2:]
    if top > 0:
        out[..., : min(top, h), :] = 0
    if bottom > 0:
        out[..., max(h - bottom, 0) :, :] = 0
    if left > 0:
        out[..., :, : min(left, w)] = 0
    if right > 0:
        out[..., :, max(w - right, 0) :] = 0
    return out


def fusion_weights(
    probs: Sequence[torch.Tensor], mode: str, static: Sequence[float] | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-pixel teacher weights (K,B,1,H,W) summing to 1 over K, and an agreement mask (B,H,W) or None."""
    k = len(probs)
    if k == 0:
        raise ValueError("fusion needs at least one teacher")
    stacked = torch.stack(list(probs))  # (K,B,C,H,W)
    confidence, labels = stacked.max(dim=2, keepdim=True)  # (K,B,1,H,W)
    agree = None
    if mode in ("mean", "agree"):
        a = torch.as_tensor(list(static) if static else [1.0] * k, dtype=stacked.dtype, device=stacked.device)
        if a.numel() != k:
            raise ValueError(f"{a.numel()} fusion weights for {k} teachers")
        w = (a / a.sum()).view(k, 1, 1, 1, 1).expand_as(confidence)
        if mode == "agree":
            agree = (labels == labels[0:1]).all(dim=0)[:, 0].float()
    elif mode == "confidence":
        w = confidence / confidence.sum(dim=0, keepdim=True).clamp_min(1e-12)
    elif mode == "max":
        best = confidence.argmax(dim=0, keepdim=True)
        w = torch.zeros_like(confidence).scatter_(0, best, 1.0)
    else:
        raise ValueError(f"unknown fusion mode {mode!r}")
    return w, agree


def fuse(probs: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """sum_k weights_k * probs_k: (B,C,H,W)."""
    return (torch.stack(list(probs)) * weights).sum(dim=0)


def teacher_targets(
    logits: Sequence[torch.Tensor],
    size: tuple[int, int],
    temperature: float,
    fusion: str,
    static: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Fused hard-label probabilities (T = 1), fused softened probabilities (T) and the agreement mask."""
    up = [upsample_logits(z.float(), size) for z in logits]
    probs = [torch.softmax(z, dim=1) for z in up]
    if len(probs) == 1:
        soft = probs[0] if temperature == 1.0 else torch.softmax(up[0] / temperature, dim=1)
        return probs[0], soft, None
    weights, agree = fusion_weights(probs, fusion, static)
    fused = fuse(probs, weights)
    soft = fused if temperature == 1.0 else fuse([torch.softmax(z / temperature, dim=1) for z in up], weights)
    return fused, soft, agree
