"""Pure pieces of the self-training / DUDA machinery: EMA, ClassMix, pseudo-labels, fusion, losses,
inconsistency weights, schedules, rare-class sampling."""

from __future__ import annotations

import math
import typing

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data.sampling import rcs_probabilities
from edgeseg.uda.batches import RareClassCropSampler
from edgeseg.uda.config import DataConfig
from edgeseg.uda.ema import ema_alpha, ema_update, make_ema_copy
from edgeseg.uda.losses import (
    class_inconsistency,
    distillation_kl,
    feature_distance,
    inconsistency_class_weights,
    normalized_inconsistency,
    prediction_confusion,
    weighted_cross_entropy,
)
from edgeseg.uda.mixing import (
    augment_source,
    block_mask,
    classmix_masks,
    gaussian_blur,
    mix,
    mix_labels,
    strong_augment,
)
from edgeseg.uda.pseudo import (
    apply_ignore_margins,
    downsample_labels,
    fusion_weights,
    pseudo_labels,
    teacher_targets,
)
from edgeseg.uda.schedule import distill_weight, finetune_start, lr_factor


# ------------------------------------------------------------------------------------------------------ EMA
def test_ema_alpha_schedule() -> None:
    assert ema_alpha(0) == 0.0
    assert ema_alpha(1) == 0.5
    assert ema_alpha(3) == pytest.approx(0.75)
    assert ema_alpha(10_000, 0.999) == 0.999
    assert ema_alpha(999, 0.999) == pytest.approx(0.999)


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))


def test_ema_update_follows_parameters_and_bn_buffers() -> None:
    torch.manual_seed(0)
    student = _bn_net()
    teacher = make_ema_copy(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    student.train()
    student(torch.randn(8, 3, 5, 5) * 3 + 1)  # changes running stats and num_batches_tracked
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_now = {k: v.clone() for k, v in student.state_dict().items()}
    alpha = 0.9
    ema_update(teacher, student, alpha)
    after = teacher.state_dict()
    for key, value in after.items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value, alpha * t_before[key] + (1 - alpha) * s_now[key])
        else:  # num_batches_tracked is copied
            assert torch.equal(value, s_now[key])
    assert not torch.equal(after["1.running_mean"], t_before["1.running_mean"])  # buffers really moved
    ema_update(teacher, student, ema_alpha(0))  # alpha 0: the teacher becomes the student
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, s_now[key].to(value.dtype))


# ------------------------------------------------------------------------------------------------- ClassMix
def test_classmix_mask_selects_half_of_the_present_classes() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.full((3, 16, 16), 255, dtype=torch.long)
    labels[0, :4], labels[0, 4:8], labels[0, 8:12], labels[0, 12:15] = 0, 3, 7, 11  # 4 classes + ignore row
    labels[1, :, :8], labels[1, :, 8:] = 2, 5  # 2 classes
    labels[2, :, :5], labels[2, :, 5:10], labels[2, :, 10:] = 1, 4, 9  # 3 classes, no ignore
    masks = classmix_masks(labels, g)
    for b, n_present in enumerate((4, 2, 3)):
        chosen = torch.unique(labels[b][masks[b] > 0])
        assert len(chosen) == math.ceil(n_present / 2)
        assert 255 not in chosen.tolist()
        for c in torch.unique(labels[b]).tolist():  # every class is pasted entirely or not at all
            region = masks[b][labels[b] == c]
            assert bool((region == region[0]).all())
        assert bool((masks[b][labels[b] == 255] == 0).all())


def test_classmix_is_random_over_calls_and_reproducible_by_seed() -> None:
    labels = torch.arange(8).repeat_interleave(4).view(1, 4, 8).expand(1, 4, 8).contiguous()
    a = [classmix_masks(labels, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(a[0], a[1])
    g = torch.Generator().manual_seed(3)
    draws = {tuple(classmix_masks(labels, g)[0, 0].tolist()) for _ in range(10)}
    assert len(draws) > 1


def test_mix_pastes_source_pixels_and_labels() -> None:
    src = torch.ones(2, 3, 4, 4)
    tgt = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 4, 4)
    mask[:, :2] = 1
    mixed = mix(mask, src, tgt)
    assert bool((mixed[:, :, :2] == 1).all()) and bool((mixed[:, :, 2:] == 0).all())
    lab = mix_labels(mask, torch.full((2, 4, 4), 7), torch.full((2, 4, 4), 3))
    assert bool((lab[:, :2] == 7).all()) and bool((lab[:, 2:] == 3).all())


def test_strong_augment_keeps_shape_and_blur_preserves_mean() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 32, 48)
    y = strong_augment(x, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), g, jitter_p=1.0)
    assert y.shape == x.shape and torch.isfinite(y).all()
    const = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 1.0, (5, 5)), const)


MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@pytest.mark.parametrize("kind", typing.get_args(typing.get_type_hints(DataConfig)["source_augment"]))
def test_source_augment_every_choice_is_reproducible_and_finite(kind) -> None:
    x = torch.randn(3, 3, 24, 40)
    y1 = augment_source(kind, x, MEAN, STD, torch.Generator().manual_seed(5))
    y2 = augment_source(kind, x, MEAN, STD, torch.Generator().manual_seed(5))
    assert y1.shape == x.shape and torch.isfinite(y1).all()
    torch.testing.assert_close(y1, y2)
    if kind == "none":
        assert y1 is x  # no copy and no random draw: runs without it are unchanged
    else:
        assert not torch.allclose(y1, x)


def test_randomize_takes_hue_away_as_a_cue() -> None:
    """A pure red image comes out with every channel dominant in some draws (hue from the whole circle)."""
    m = torch.tensor(MEAN).view(1, 3, 1, 1) / 255
    s = torch.tensor(STD).view(1, 3, 1, 1) / 255
    red = (torch.tensor([0.8, 0.1, 0.1]).view(1, 3, 1, 1).expand(1, 3, 8, 8) - m) / s
    g = torch.Generator().manual_seed(0)
    dominant = set()
    for _ in range(40):
        rgb = augment_source("randomize", red, MEAN, STD, g) * s + m
        assert float(rgb.min()) >= -1e-6 and float(rgb.max()) <= 1 + 1e-6
        spread = rgb.mean(dim=(2, 3))[0]
        if float(spread.max() - spread.min()) > 0.05:  # not turned grey
            dominant.add(int(spread.argmax()))
    assert dominant == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown source augmentation"):
        augment_source("sepia", red, MEAN, STD, g)


def test_block_mask_ratio() -> None:
    keep = block_mask(4, (64, 64), 8, 0.7, torch.Generator().manual_seed(0))
    assert keep.shape == (4, 1, 64, 64)
    assert 0.15 < float(keep.mean()) < 0.45
    cells = keep[:, :, ::8, ::8]
    assert torch.equal(F.interpolate(cells, scale_factor=8), keep)  # constant over 8x8 blocks


# ---------------------------------------------------------------------------------------------- pseudo-labels
def _probs_with_confidence(conf: torch.Tensor, num_classes: int = 4, cls: int = 2) -> torch.Tensor:
    """(B,H,W) confidences -> (B,C,H,W) probabilities whose arg-max is `cls` with that confidence."""
    rest = (1 - conf) / (num_classes - 1)
    probs = rest.unsqueeze(1).repeat(1, num_classes, 1, 1)
    probs[:, cls] = conf
    return probs


def test_pseudo_label_quality_weight_is_fraction_above_threshold() -> None:
    conf = torch.full((2, 4, 4), 0.5)
    conf[0, :2] = 0.99  # image 0: half confident; image 1: none
    labels, w = pseudo_labels(_probs_with_confidence(conf), 0.968, "quality", "batch")
    assert bool((labels == 2).all())
    torch.testing.assert_close(w, torch.full_like(w, 0.25))
    _, w_img = pseudo_labels(_probs_with_confidence(conf), 0.968, "quality", "image")
    assert bool((w_img[0] == 0.5).all()) and bool((w_img[1] == 0).all())
    _, w_thr = pseudo_labels(_probs_with_confidence(conf), 0.968, "threshold")
    assert torch.equal(w_thr, (conf >= 0.968).float())
    _, w_conf = pseudo_labels(_probs_with_confidence(conf), 0.968, "confidence")
    torch.testing.assert_close(w_conf, conf)


def test_ignore_margins() -> None:
    w = apply_ignore_margins(torch.ones(1, 10, 12), top=2, bottom=3, left=1, right=4)
    assert w[0, :2].sum() == 0 and w[0, 7:].sum() == 0 and w[0, :, :1].sum() == 0 and w[0, :, 8:].sum() == 0
    assert bool((w[0, 2:7, 1:8] == 1).all())


def test_downsample_labels_takes_cell_centres() -> None:
    labels = torch.arange(64).view(1, 8, 8)
    small = downsample_labels(labels, (2, 2))
    assert small.tolist() == [[[18, 22], [50, 54]]]


def test_fusion_modes() -> None:
    a = _probs_with_confidence(torch.full((1, 2, 2), 0.9), cls=1)
    b = _probs_with_confidence(torch.full((1, 2, 2), 0.6), cls=3)
    w, agree = fusion_weights([a, b], "confidence")
    torch.testing.assert_close(w[0], torch.full_like(w[0], 0.9 / 1.5))
    assert agree is None
    w, _ = fusion_weights([a, b], "max")
    assert bool((w[0] == 1).all()) and bool((w[1] == 0).all())
    w, agree = fusion_weights([a, b], "agree")
    assert bool((agree == 0).all())
    _, agree_same = fusion_weights([a, a], "agree")
    assert bool((agree_same == 1).all())
    w, _ = fusion_weights([a, b], "mean", [3.0, 1.0])
    torch.testing.assert_close(w[:, 0, 0, 0, 0], torch.tensor([0.75, 0.25]))
    fused, soft, _ = teacher_targets([torch.log(a), torch.log(b)], (2, 2), 2.0, "confidence")
    torch.testing.assert_close(fused.sum(1), torch.ones(1, 2, 2))
    torch.testing.assert_close(soft.sum(1), torch.ones(1, 2, 2))
    assert bool((soft.max(1).values < fused.max(1).values).all())  # T = 2 softens


# ------------------------------------------------------------------------------------------------------ losses
def test_weighted_cross_entropy_matches_torch_and_scales_with_weights() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 4)
    labels = torch.randint(0, 5, (2, 8, 8))
    labels[0, 0, 0] = 255
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    ref = F.cross_entropy(up, labels, ignore_index=255, reduction="none").mean()
    torch.testing.assert_close(weighted_cross_entropy(logits, labels), ref)
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels, torch.full((2, 8, 8), 0.25)), 0.25 * ref
    )
    cw = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0])
    per_pixel = F.cross_entropy(up, labels, ignore_index=255, reduction="none")
    expected = (per_pixel * torch.where(labels == 1, 2.0, 1.0)).mean()
    torch.testing.assert_close(weighted_cross_entropy(logits, labels, class_weight=cw), expected)


def test_distillation_kl_properties() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 3, 3)
    same = torch.softmax(logits / 2.0, dim=1)
    assert float(distillation_kl(logits, same, 2.0)) == pytest.approx(0.0, abs=1e-6)
    labels = torch.randint(0, 4, (1, 3, 3))
    onehot = F.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(distillation_kl(logits, onehot, 1.0), weighted_cross_entropy(logits, labels))


def test_feature_distance_masks_thing_classes() -> None:
    feats = torch.zeros(1, 2, 2, 2)
    ref = torch.zeros(1, 2, 2, 2)
    ref[0, 0, 0, 0] = 3.0  # distance 3 at cell (0, 0), 0 elsewhere
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4, :4] = 13  # cell (0, 0) is "car"
    assert float(feature_distance(feats, ref, labels, [13], 19)) == pytest.approx(3.0)
    assert float(feature_distance(feats, ref, torch.zeros_like(labels), [13], 19)) == 0.0


def test_inconsistency_weights_by_hand() -> None:
    student = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    teacher = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    confusion = prediction_confusion(student, teacher, 4)
    inc = class_inconsistency(confusion)
    # class 0: S={0,1,2} T={0,1} -> 1 - 2/3; class 1: S={3,4} T={2,3} -> 1 - 1/3; class 2: S={5,6,7} T={4..7} -> 1 - 3/4
    expected = [1 - 2 / 3, 1 - 1 / 3, 1 - 3 / 4]
    torch.testing.assert_close(inc[:3], torch.tensor(expected, dtype=torch.float64))
    assert math.isnan(float(inc[3]))
    norm = normalized_inconsistency(inc)
    mean = sum(expected) / 3
    torch.testing.assert_close(norm, torch.tensor([e / mean for e in expected] + [1.0], dtype=torch.float64))
    w = inconsistency_class_weights(confusion, beta=2.0)
    torch.testing.assert_close(w, ((1 + 2 * norm) / 3).float())
    assert int(w.argmax()) == 1  # the class the two disagree on most gets the largest weight
    agree = inconsistency_class_weights(prediction_confusion(student, student, 4), beta=1.0)
    torch.testing.assert_close(agree, torch.ones(4))


# --------------------------------------------------------------------------------------------------- schedules
def test_lr_schedule_warmup_and_poly() -> None:
    assert lr_factor(0, 100, 10, 1e-6) == pytest.approx(1e-6, rel=1e-3)
    assert lr_factor(5, 100, 10, 0.0) == pytest.approx(0.5 * 0.95)
    assert lr_factor(10, 100, 10) == pytest.approx(0.9)
    assert lr_factor(100, 100, 10) == 0.0


def test_gradual_distillation_weight() -> None:
    assert distill_weight(0, 100, "linear", 0.5) == 0.0
    assert distill_weight(25, 100, "linear", 0.5) == pytest.approx(0.5)
    assert distill_weight(80, 100, "linear", 0.5) == 1.0
    assert distill_weight(25, 100, "cosine", 0.5) == pytest.approx(0.5)
    assert distill_weight(10, 100, "cosine", 0.5) < distill_weight(10, 100, "linear", 0.5)
    assert distill_weight(0, 100, "constant", 0.5) == 1.0
    assert distill_weight(5, 100, "confidence", 0.5) is None
    assert distill_weight(150, 100, "linear", 0.5) == 1.0  # fine-tuning
    assert finetune_start(100, 0.25, True) == 75 and finetune_start(100, 0.25, False) == 100


# ---------------------------------------------------------------------------------------- rare-class sampling
def test_rcs_probabilities_and_sampling() -> None:
    freq = np.array([0.7, 0.25, 0.05])
    p = rcs_probabilities(freq, 0.1)
    z = np.exp((1 - freq) / 0.1)
    np.testing.assert_allclose(p, z / z.sum())
    assert p[2] > p[1] > p[0]
    counts = np.array([[700, 200, 0], [700, 300, 10], [700, 0, 90]])  # class 2 >= 50 px only in image 2
    sampler = RareClassCropSampler.from_counts(counts, temperature=0.1, min_pixels=50, min_crop_ratio=0.5)
    assert sampler.images_with_class[2].tolist() == [2]
    assert sampler.images_with_class[1].tolist() == [0, 1]
    rng = np.random.default_rng(0)
    draws = [sampler.sample(rng) for _ in range(4000)]
    classes = np.array([c for c, _ in draws])
    for i, c in enumerate(sampler.classes):
        assert abs((classes == c).mean() - sampler.probs[i]) < 0.03
    assert all(img == 2 for c, img in draws if c == 2)
