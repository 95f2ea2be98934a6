"""One training step of every method -> a dict of named loss tensors. Never calls backward: the trainer does.

Methods (config `method`):
    source_only    student: CE(source)
    oracle         student: CE(target, target labels)            - an upper bound, not UDA
    self_training  student: CE(source) + CE(mixed, pseudo-labels of the student's own EMA)   (DAFormer on small)
    fixed_teacher  student: CE(source) + lambda * KD(mixed, fixed adapted teacher(s))
    duda           aux_i:   CE(source) + CE(mixed, pseudo-labels of its EMA teacher_i) [+ FD] [+ MIC]
                   student: CE(source) + lambda(t) * KD(mixed, fused teachers), class weights w_c when fine-tuning
with KD = ce_weight * CE(pseudo-label) and/or kl_weight * T^2 KL(soft teacher || student). All networks share one
ClassMix mask per step, so one teacher forward on the target batch serves every student. Each trainable network
runs ONE forward over [source; mixed (; masked target)]: DDP then sees every parameter once per step, and the
decode head's BatchNorm normalises source and mixed crops together (DAFormer runs two passes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.uda.config import DistillConfig
from edgeseg.uda.losses import distillation_kl, feature_distance, weighted_cross_entropy
from edgeseg.uda.mixing import block_mask, classmix_masks, mix, mix_labels, strong_augment
from edgeseg.uda.nets import DistillNets, set_teacher_mode
from edgeseg.uda.pseudo import (
    apply_ignore_margins,
    downsample_labels,
    pseudo_labels,
    teacher_targets,
    upsample_logits,
)
from edgeseg.uda.schedule import distill_weight


@dataclass
class Batch:
    source: torch.Tensor  # (B,3,H,W) normalised
    source_labels: torch.Tensor  # (B,H,W) int64
    target: torch.Tensor  # (B,3,H,W)
    target_labels: torch.Tensor | None = None  # oracle: trained on; else train.pl_precision: logged only


@dataclass
class StepContext:
    step: int  # 0-based iteration
    finetune_start: int  # first fine-tuning iteration (== iters when there is none)
    generator: torch.Generator  # all mixing/augmentation randomness
    mean: tuple[float, ...]
    std: tuple[float, ...]
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    @property
    def finetuning(self) -> bool:
        return self.step >= self.finetune_start


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]
    logs: dict[str, float] = field(default_factory=dict)
    trained: tuple[str, ...] = ()  # which networks received gradients ("student", "aux0", ...)


@dataclass
class Trainables:
    """The trainable networks as the step calls them: possibly DDP-wrapped `WithFeatures` adapters."""

    student: nn.Module
    aux: list[nn.Module]


def train_large(cfg: DistillConfig, ctx: StepContext) -> bool:
    return not ctx.finetuning or cfg.duda.inconsistency.train_large


@torch.no_grad()
def teacher_logits(model: nn.Module, images: torch.Tensor, bn_mode: str, ctx: StepContext) -> torch.Tensor:
    set_teacher_mode(model, bn_mode)
    with ctx.autocast():
        return model(images).float()


def student_teacher_logits(
    cfg: DistillConfig, nets: DistillNets, target: torch.Tensor, large: list[torch.Tensor], ctx: StepContext
) -> list[torch.Tensor]:
    """Logits of every teacher the small student learns from (in config order)."""
    bn = cfg.uda.teacher_bn
    if cfg.method == "self_training":
        return [teacher_logits(nets.student_ema, target, bn, ctx)]
    if cfg.method == "fixed_teacher":
        return [teacher_logits(t, target, bn, ctx) for t in nets.fixed]
    mt = cfg.duda.multi_teacher
    kinds = mt.teachers if mt.enabled else ("large_ema",)
    out: list[torch.Tensor] = []
    for kind in kinds:
        if kind == "large_ema":
            out.extend(large)
        elif kind == "small_ema":
            out.append(teacher_logits(nets.student_ema, target, bn, ctx))
        elif kind == "fixed":
            out.extend(teacher_logits(t, target, bn, ctx) for t in nets.fixed)
    return out


def _same_input_targets(
    cfg: DistillConfig,
    nets: DistillNets,
    mixed: torch.Tensor,
    temperature: float,
    image_size: tuple[int, int],
    size: tuple[int, int],
    ctx: StepContext,
) -> tuple[torch.Tensor, torch.Tensor]:
    """duda.kl_view = "same_input": the fused teachers' soft targets and KL pixel weights on the student's own
    mixed, augmented input (every pixel, source-pasted ones included)."""
    mt = cfg.duda.multi_teacher
    large = [teacher_logits(t, mixed, cfg.uda.teacher_bn, ctx) for t in nets.teachers]
    views = student_teacher_logits(cfg, nets, mixed, large, ctx)
    fused, soft, agree = teacher_targets(views, size, temperature, mt.fusion, mt.weights or None)
    _, weights = _pseudo(cfg, fused, image_size)
    if cfg.duda.kl_weighting == "uniform":
        weights = _margins(cfg, torch.ones_like(weights), image_size)
    if agree is not None:
        weights = weights * agree
    return soft, weights


def loss_size(cfg: DistillConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    """Label/loss grid: the crop itself, or the stride-4 logit grid (ceil(H/4), ceil(W/4))."""
    if cfg.uda.loss_resolution == "logits":
        return (image_size[0] + 3) // 4, (image_size[1] + 3) // 4
    return image_size


def _margins(cfg: DistillConfig, weights: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Zero the ignore margins (given in crop pixels, scaled to the loss grid)."""
    u = cfg.uda
    sy, sx = weights.shape[-2] / image_size[0], weights.shape[-1] / image_size[1]
    return apply_ignore_margins(
        weights,
        round(u.ignore_top * sy),
        round(u.ignore_bottom * sy),
        round(u.ignore_left * sx),
        round(u.ignore_right * sx),
    )


def _pseudo(
    cfg: DistillConfig, probs: torch.Tensor, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels and their pixel weights (confidence weighting, then ignore margins)."""
    u = cfg.uda
    labels, weights = pseudo_labels(probs, u.pseudo_threshold, u.pseudo_weighting, u.quality_scope)
    return labels, _margins(cfg, weights, image_size)


def pl_precision(probs: torch.Tensor, labels: torch.Tensor, threshold: float, size: tuple[int, int]) -> float:
    """Share of confident (max prob >= threshold) labelled pixels whose pseudo-label is right (NaN: none)."""
    with torch.no_grad():
        target = downsample_labels(labels, size)
        conf, pred = probs.max(dim=1)
        keep = (conf >= threshold) & (target != 255)
        n = int(keep.sum())
        return float((pred[keep] == target[keep]).float().mean()) if n else float("nan")


def _supervised(cfg: DistillConfig, trainables: Trainables, batch: Batch, ctx: StepContext) -> StepOutput:
    images, labels = (
        (batch.target, batch.target_labels) if cfg.method == "oracle" else (batch.source, batch.source_labels)
    )
    if labels is None:
        raise ValueError("method oracle needs target labels in the batch")
    with ctx.autocast():
        logits = trainables.student(images)
    labels = downsample_labels(labels, loss_size(cfg, tuple(images.shape[-2:])))
    return StepOutput({"student.src": weighted_cross_entropy(logits, labels)}, trained=("student",))


def distill_step(
    cfg: DistillConfig, nets: DistillNets, trainables: Trainables, batch: Batch, ctx: StepContext
) -> StepOutput:
    """Forward passes and losses of one iteration (see module docstring)."""
    if cfg.method in ("source_only", "oracle"):
        return _supervised(cfg, trainables, batch, ctx)
    u, d = cfg.uda, cfg.duda
    image_size = tuple(batch.source.shape[-2:])
    size = loss_size(cfg, image_size)
    n = batch.source.shape[0]
    logs: dict[str, float] = {}
    losses: dict[str, torch.Tensor] = {}

    # --- mixing: one ClassMix mask per source image, shared by all students ---------------------------------
    if u.mix == "classmix":
        masks = classmix_masks(batch.source_labels, ctx.generator).to(batch.source.device)
    else:
        masks = torch.zeros(batch.source_labels.shape, device=batch.source.device)
    mixed = strong_augment(
        mix(masks, batch.source, batch.target),
        ctx.mean,
        ctx.std,
        ctx.generator,
        u.color_jitter_p,
        u.color_jitter_strength,
        u.blur,
    )
    masks_l = downsample_labels(masks, size)  # label-space copies on the loss grid
    source_labels = downsample_labels(batch.source_labels, size)

    # --- large pair(s): DAFormer/MIC self-training -------------------------------------------------------------
    large_logits = [teacher_logits(t, batch.target, u.teacher_bn, ctx) for t in nets.teachers]
    trained: list[str] = ["student"]
    if train_large(cfg, ctx):
        mic_images = None
        if u.mic.enabled and trainables.aux:
            keep = block_mask(
                n, image_size, u.mic.block_size, u.mic.mask_ratio, ctx.generator, batch.target.device
            )
            mic_images = (
                strong_augment(
                    batch.target,
                    ctx.mean,
                    ctx.std,
                    ctx.generator,
                    u.color_jitter_p,
                    u.color_jitter_strength,
                    u.blur,
                )
                * keep
            )
        for i, (aux, logits_t) in enumerate(zip(trainables.aux, large_logits, strict=True)):
            probs = torch.softmax(upsample_logits(logits_t, size), dim=1)
            pl, pw = _pseudo(cfg, probs, image_size)
            mixed_labels = mix_labels(masks_l, source_labels, pl)
            mixed_weights = mix(masks_l, torch.ones_like(pw), pw)
            inputs = [batch.source, mixed] + ([mic_images] if mic_images is not None else [])
            with ctx.autocast():
                logits, feats = aux(torch.cat(inputs), features=True)
            losses[f"aux{i}.src"] = weighted_cross_entropy(logits[:n], source_labels)
            losses[f"aux{i}.mix"] = weighted_cross_entropy(logits[n : 2 * n], mixed_labels, mixed_weights)
            if mic_images is not None:
                losses[f"aux{i}.mic"] = u.mic.weight * weighted_cross_entropy(logits[2 * n :], pl, pw)
            if u.fd_weight > 0 and nets.fd_reference is not None:
                with torch.no_grad(), ctx.autocast():
                    reference = nets.fd_reference.eval()(batch.source)[-1]
                losses[f"aux{i}.fd"] = u.fd_weight * feature_distance(
                    feats[-1][:n],
                    reference,
                    batch.source_labels,
                    u.fd_classes,
                    cfg.models.num_classes,
                    u.fd_scale_min_ratio,
                )
            logs[f"aux{i}.pl_quality"] = float((probs.max(dim=1).values >= u.pseudo_threshold).float().mean())
            if batch.target_labels is not None:
                logs[f"aux{i}.pl_precision"] = pl_precision(
                    probs, batch.target_labels, u.pseudo_threshold, size
                )
            trained.append(f"aux{i}")

    # --- small student: source CE + (gradual) distillation from the fused teachers -------------------------------
    teacher_list = student_teacher_logits(cfg, nets, batch.target, large_logits, ctx)
    mt = d.multi_teacher
    temperature = d.temperature if cfg.method != "self_training" else 1.0
    fused, soft, agree = teacher_targets(teacher_list, size, temperature, mt.fusion, mt.weights or None)
    pl, pw = _pseudo(cfg, fused, image_size)
    kw = _margins(cfg, torch.ones_like(pw), image_size) if d.kl_weighting == "uniform" else pw
    if agree is not None:
        pw, kw = pw * agree, kw * agree
        logs["teachers.agree"] = float(agree.mean())
    quality = float((fused.max(dim=1).values >= u.pseudo_threshold).float().mean())
    logs["student.pl_quality"] = quality
    if batch.target_labels is not None:
        logs["student.pl_precision"] = pl_precision(fused, batch.target_labels, u.pseudo_threshold, size)
    mixed_labels = mix_labels(masks_l, source_labels, pl)
    mixed_weights = mix(masks_l, torch.ones_like(pw), pw)
    kl_weights = mix(masks_l, torch.ones_like(kw), kw)

    if cfg.method == "self_training":
        lam, kd, class_w = 1.0, "ce", None
    else:
        pre_iters = ctx.finetune_start
        lam = distill_weight(
            ctx.step, pre_iters, d.gradual.schedule, d.gradual.ramp_fraction, d.gradual.start
        )
        lam = quality if lam is None else lam
        kd = d.kd
        class_w = nets.class_weights if (ctx.finetuning and d.inconsistency.enabled) else None
    logs["student.lambda"] = lam

    with ctx.autocast():
        logits = trainables.student(torch.cat([batch.source, mixed]))
    src_w = class_w if (class_w is not None and d.inconsistency.apply_to == "both") else None
    losses["student.src"] = weighted_cross_entropy(logits[:n], source_labels, class_weight=src_w)
    if "ce" in kd.split("+"):
        weight = d.ce_weight if cfg.method != "self_training" else 1.0
        losses["student.pl"] = (
            lam * weight * weighted_cross_entropy(logits[n:], mixed_labels, mixed_weights, class_w)
        )
    if "kl" in kd.split("+"):
        if d.kl_view == "same_input" and cfg.method != "self_training":
            soft_mixed, kl_weights = _same_input_targets(cfg, nets, mixed, temperature, image_size, size, ctx)
        else:
            onehot = (
                F.one_hot(source_labels.clamp(0, cfg.models.num_classes - 1), cfg.models.num_classes)
                .permute(0, 3, 1, 2)
                .to(soft.dtype)
            )
            soft_mixed = mix(masks_l, onehot, soft)
        losses["student.kl"] = (
            lam * d.kl_weight * distillation_kl(logits[n:], soft_mixed, temperature, kl_weights, class_w)
        )
    return StepOutput(losses, logs, tuple(trained))
