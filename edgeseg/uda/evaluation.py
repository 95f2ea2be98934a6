"""Evaluation on the target val split (through `edgeseg.evaluate`) and the student/teacher disagreement
statistics that drive inconsistency-based loss weighting."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data.datasets import SegDataset
from edgeseg.evaluate import (
    EvalResult,
    LogitsFn,
    evaluate_dataset,
    make_predictor,
    normalize_image,
    slide_logits,
)
from edgeseg.uda.batches import resize_pair
from edgeseg.uda.config import DataConfig
from edgeseg.uda.losses import prediction_confusion


def model_logits_fn(
    model: nn.Module,
    device: str,
    resize: tuple[int, int],
    mode: str = "whole",
    crop: tuple[int, int] = (512, 512),
    stride: tuple[int, int] = (341, 341),
) -> LogitsFn:
    """Normalised (1,3,H,W) numpy -> logits, resizing the input to `resize` first (mmseg's test scale)."""

    @torch.inference_mode()
    def base(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    def run(x: np.ndarray) -> np.ndarray:
        if resize[0] > 0 and tuple(x.shape[-2:]) != tuple(resize):
            x = F.interpolate(torch.from_numpy(x), size=resize, mode="bilinear", align_corners=False).numpy()
        if mode == "slide":
            return slide_logits(base, x, crop, stride)[None]
        return base(x)

    return run


def evaluate_model(model: nn.Module, dataset: SegDataset, data: DataConfig, device: str) -> EvalResult:
    """mIoU of `model` on a labelled split, at the original label resolution (logits upsampled bilinearly)."""
    was_training = model.training
    model.eval()
    meta = getattr(model, "meta", {}) or {}
    kwargs = {k: meta[k] for k in ("mean", "std") if k in meta}
    try:
        fn = model_logits_fn(
            model, device, data.eval_resize, data.eval_mode, data.eval_crop, data.eval_stride
        )
        result = evaluate_dataset(make_predictor(fn, **kwargs), dataset)
        if data.eval_classes:
            result.eval_classes = tuple(data.eval_classes)
        return result
    finally:
        model.train(was_training)


@torch.no_grad()
def disagreement_confusion(
    student: nn.Module,
    teachers: Sequence[nn.Module],
    dataset: SegDataset,
    resize: tuple[int, int],
    num_classes: int,
    device: str,
    max_images: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """(C, C) counts of (student class, teacher class) over target images; teacher = mean of the teachers'
    softmax when there are several. Networks run in eval mode and are restored afterwards."""
    modes = [m.training for m in (student, *teachers)]
    for m in (student, *teachers):
        m.eval()
    kwargs = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    total = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    try:
        count = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
        for i in range(count):
            image, _ = resize_pair(dataset.read_image(i), None, resize)
            x = torch.from_numpy(normalize_image(image, **kwargs)).to(device)
            s = student(x).argmax(dim=1)
            probs = torch.stack([torch.softmax(t(x).float(), dim=1) for t in teachers]).mean(dim=0)
            total += prediction_confusion(s.cpu(), probs.argmax(dim=1).cpu(), num_classes)
    finally:
        for m, mode in zip((student, *teachers), modes, strict=True):
            m.train(mode)
    return total
