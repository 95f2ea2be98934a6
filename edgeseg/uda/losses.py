"""Losses: pixel/class-weighted cross-entropy, distillation KL, feature distance, inconsistency class weights.

Reductions follow mmseg 0.x (what DAFormer/MIC train with): a per-pixel loss is multiplied by its pixel
weight and averaged over ALL pixels of the batch (ignored pixels count as 0), so a pseudo-label quality of
0.3 scales the target loss by 0.3 rather than being renormalised away.

Inconsistency (DUDA's I_c; the exact formula is our reading, see docs/duda.md): over target pixels, with
S_c / T_c the pixels the small student / the large teacher assign to class c,
    I_c  = 1 - |S_c & T_c| / |S_c | T_c|                       (1 - IoU of the two predictions)
    I'_c = I_c / mean_{c'} I_c'                                (mean over classes either network predicts)
    w_c  = (1 + beta * I'_c) / (1 + beta)                      (mean 1 over classes: loss scale unchanged)
Classes neither network predicts get I'_c = 1 (neutral weight 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from edgeseg.uda.pseudo import upsample_logits


def weighted_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pixel_weight: torch.Tensor | None = None,
    class_weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Mean over all pixels of w_pixel * w_class[y] * CE; logits are upsampled to the label size."""
    logits = upsample_logits(logits, tuple(labels.shape[-2:])).float()
    loss = F.cross_entropy(logits, labels, weight=class_weight, ignore_index=ignore_index, reduction="none")
    if pixel_weight is not None:
        loss = loss * pixel_weight
    return loss.mean()


def distillation_kl(
    student_logits: torch.Tensor,
    target_probs: torch.Tensor,
    temperature: float = 1.0,
    pixel_weight: torch.Tensor | None = None,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 * KL(p_teacher^T || p_student^T) per pixel, weighted, averaged over all pixels.

    `target_probs` are already softened with T (and may be one-hot where ground truth is pasted in);
    `class_weight` weights each pixel by the weight of the target's arg-max class.
    """
    logits = upsample_logits(student_logits, tuple(target_probs.shape[-2:])).float()
    log_q = F.log_softmax(logits / temperature, dim=1)
    kl = (torch.xlogy(target_probs, target_probs) - target_probs * log_q).sum(dim=1) * temperature**2
    if class_weight is not None:
        kl = kl * class_weight[target_probs.argmax(dim=1)]
    if pixel_weight is not None:
        kl = kl * pixel_weight
    return kl.mean()


def downscale_label_ratio(
    labels: torch.Tensor, factor: int, min_ratio: float, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """(B,H,W) labels -> (B,H/f,W/f): the majority class of each f x f cell, ignore if it covers < min_ratio."""
    out = labels.clone()
    out[out == ignore_index] = num_classes
    onehot = F.one_hot(out, num_classes + 1).permute(0, 3, 1, 2).float()
    ratio, cls = F.avg_pool2d(onehot, kernel_size=factor).max(dim=1)
    cls[cls == num_classes] = ignore_index
    cls[ratio < min_ratio] = ignore_index
    return cls


def feature_distance(
    features: torch.Tensor,
    reference: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[int],
    num_classes: int,
    min_ratio: float = 0.75,
) -> torch.Tensor:
    """DAFormer's FD: mean L2 distance (over channels) between bottleneck features and those of the frozen
    initial backbone, on feature cells whose downscaled label is a "thing" class. 0 when no cell qualifies
    (DAFormer returns NaN there)."""
    factor = labels.shape[-1] // features.shape[-1]
    small = downscale_label_ratio(labels, factor, min_ratio, num_classes)[
        ..., : features.shape[-2], : features.shape[-1]
    ]
    mask = torch.isin(small, torch.as_tensor(list(classes), device=labels.device))
    if not bool(mask.any()):
        return features.sum() * 0.0
    dist = torch.linalg.vector_norm(features.float() - reference.float(), dim=1)
    return dist[mask].mean()


def prediction_confusion(
    student_pred: torch.Tensor, teacher_pred: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(C, C) int64 counts: rows = student class, columns = teacher class, over all given pixels."""
    s = student_pred.reshape(-1).long()
    t = teacher_pred.reshape(-1).long()
    keep = (s >= 0) & (s < num_classes) & (t >= 0) & (t < num_classes)
    idx = s[keep] * num_classes + t[keep]
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_inconsistency(confusion: torch.Tensor) -> torch.Tensor:
    """I_c = 1 - |S_c & T_c| / |S_c | T_c| per class (float64); NaN where neither network predicts c."""
    m = confusion.double()
    inter = torch.diagonal(m)
    union = m.sum(dim=1) + m.sum(dim=0) - inter
    out = torch.full_like(inter, float("nan"))
    valid = union > 0
    out[valid] = 1.0 - inter[valid] / union[valid]
    return out


def normalized_inconsistency(inconsistency: torch.Tensor) -> torch.Tensor:
    """I'_c = I_c / mean(I) over classes with a defined I_c; undefined classes -> 1; all-zero I -> all 1."""
    valid = ~torch.isnan(inconsistency)
    out = torch.ones_like(inconsistency)
    if not bool(valid.any()):
        return out
    mean = inconsistency[valid].mean()
    if float(mean) <= 0:
        return out
    out[valid] = inconsistency[valid] / mean
    return out


def inconsistency_class_weights(confusion: torch.Tensor, beta: float) -> torch.Tensor:
    """w_c = (1 + beta * I'_c) / (1 + beta), float32."""
    normalized = normalized_inconsistency(class_inconsistency(confusion))
    return ((1.0 + beta * normalized) / (1.0 + beta)).float()
