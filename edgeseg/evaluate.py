"""Semantic segmentation evaluation: streaming confusion matrix, IoU, mIoU, harmonic mean over domains.

Matches the official Cityscapes pixel-level evaluation (cityscapesscripts
`evalPixelLevelSemanticLabeling.py`) exactly:
- ground-truth pixels labelled ignore (255) are not counted at all;
- a prediction outside the classes (ignore/void) counts as a false negative for the ground-truth
  class - the extra last column of the confusion matrix holds these;
- a class with no ground truth and no prediction has IoU NaN and is left out of the mean.

numpy/OpenCV only, so device-side runtimes (ONNX Runtime, TensorRT) evaluate through the same code.
Models plug in as a `Predictor`: a callable from a BGR uint8 image to HxW uint8 trainIds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edgeseg.data.labels import CLASSES, IMAGENET_MEAN, IMAGENET_STD, colorize
from edgeseg.deploy.runtime.preprocess import normalize_batch
from edgeseg.errors import DatasetError, InputPathError

if TYPE_CHECKING:
    from edgeseg.data.datasets import SegDataset

Predictor = Callable[[np.ndarray], np.ndarray]
"""BGR uint8 HxWx3 -> HxW uint8 trainIds."""

LogitsFn = Callable[[np.ndarray], np.ndarray]
"""Normalised float32 (1,3,h,w) RGB batch -> float32 (1,C,h',w') logits at any output stride."""


class ConfusionMatrix:
    """Streaming (C, C+1) int64 counts: rows = ground truth class, columns = prediction (last = void)."""

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
        c = self.num_classes
        gt = gt.ravel().astype(np.int64)
        pred = pred.ravel().astype(np.int64)
        keep = gt < c  # 255 (and any other non-class GT value) is not evaluated
        gt, pred = gt[keep], pred[keep]
        pred = np.where((pred >= 0) & (pred < c), pred, c)
        self.matrix += np.bincount(gt * (c + 1) + pred, minlength=c * (c + 1)).reshape(c, c + 1)

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix


def per_class_iou(matrix: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where the class has neither ground truth nor prediction."""
    c = matrix.shape[0]
    tp = np.diag(matrix[:, :c]).astype(np.float64)
    fn = matrix.sum(axis=1) - tp  # includes void predictions
    fp = matrix[:, :c].sum(axis=0) - tp  # only over evaluated ground truth
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def mean_iou(iou: np.ndarray, classes: Sequence[int] | None = None) -> float:
    """Mean over non-NaN IoUs (optionally of a class subset, e.g. SYNTHIA's 16/13 classes)."""
    values = [float(iou[i]) for i in (classes if classes is not None else range(len(iou)))]
    valid = [v for v in values if not math.isnan(v)]
    # Plain left-to-right float sum, as the official script does, so results agree to the last bit.
    total = 0.0
    for v in valid:
        total += v
    return total / len(valid) if valid else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix[:, : matrix.shape[0]]) / total) if total else float("nan")


def harmonic_mean(values: Iterable[float]) -> float:
    """Harmonic mean of per-domain mIoUs (the multi-target metric); 0 if any domain scores 0."""
    vals = [float(v) for v in values]
    if not vals or any(math.isnan(v) for v in vals):
        return float("nan")
    if any(v <= 0 for v in vals):
        return 0.0
    return len(vals) / sum(1.0 / v for v in vals)


@dataclass
class EvalResult:
    matrix: np.ndarray
    classes: tuple[str, ...] = CLASSES
    eval_classes: tuple[int, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def iou(self) -> np.ndarray:
        return per_class_iou(self.matrix)

    @property
    def miou(self) -> float:
        return mean_iou(self.iou, self.eval_classes)

    @property
    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)

    def to_json(self) -> dict[str, Any]:
        """`miou` plus per-class IoU keyed by class name (NaN -> null: JSON has no NaN)."""
        iou = self.iou
        return {
            "miou": _nan_to_none(self.miou),
            "pixel_accuracy": _nan_to_none(self.pixel_accuracy),
            "iou": {name: _nan_to_none(float(iou[i])) for i, name in enumerate(self.classes)},
            "num_pixels": int(self.matrix.sum()),
            **self.info,
        }


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _frame_pattern(frame_ids: Iterable[str]) -> re.Pattern[str]:
    # Longest ids first so that e.g. "x_000001_000019" is preferred over a shorter id it contains.
    ids = sorted(set(frame_ids), key=len, reverse=True)
    return re.compile("|".join(re.escape(i) for i in ids))


def match_predictions(pred_dir: Path, frame_ids: Sequence[str]) -> dict[str, Path]:
    """Map each frame id to the one PNG under `pred_dir` whose file name contains it.

    As the official Cityscapes script: searched recursively; a frame with no prediction, or with
    more than one, is an error naming the frame. PNGs that match no frame are ignored.
    """
    if not pred_dir.is_dir():
        raise InputPathError(f"prediction folder {pred_dir} does not exist")
    pattern = _frame_pattern(frame_ids)
    found: dict[str, list[Path]] = {}
    for path in sorted(pred_dir.rglob("*.png")):
        for frame in set(pattern.findall(path.name)):
            found.setdefault(frame, []).append(path)
    for frame in frame_ids:
        hits = found.get(frame, [])
        if not hits:
            raise DatasetError(
                f"no prediction for frame {frame} under {pred_dir} (expected a PNG named *{frame}*)"
            )
        if len(hits) > 1:
            names = ", ".join(str(p) for p in hits[:3])
            raise DatasetError(f"several predictions for frame {frame}: {names}; keep one per frame")
    return {frame: found[frame][0] for frame in frame_ids}


def evaluate_prediction_dir(
    pred_dir: str | Path, dataset: SegDataset, progress: Callable[[int, int], None] | None = None
) -> EvalResult:
    """Evaluate saved trainId PNGs (one per frame, matched by frame id) against a dataset's labels."""
    pred_dir = Path(pred_dir)
    matches = match_predictions(pred_dir, [s.frame_id for s in dataset.samples])
    cm = ConfusionMatrix()
    for i, sample in enumerate(dataset.samples):
        path = matches[sample.frame_id]
        pred = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if pred is None:
            raise DatasetError(f"cannot read prediction {path}: the file is truncated or not a PNG")
        if pred.ndim != 2:
            raise DatasetError(
                f"prediction {path} has {pred.shape[2]} channels; save trainIds as a grayscale PNG"
            )
        gt = dataset.read_label(i)
        if pred.shape != gt.shape:
            raise DatasetError(
                f"prediction {path} is {pred.shape[1]}x{pred.shape[0]} but the ground truth "
                f"{sample.label} is {gt.shape[1]}x{gt.shape[0]}"
            )
        cm.update(pred, gt)
        if progress:
            progress(i + 1, len(dataset))
    return EvalResult(
        cm.matrix, info={"dataset": dataset.name, "split": dataset.split, "images": len(dataset)}
    )


def evaluate_dataset(
    predict: Predictor,
    dataset: SegDataset,
    save_pred: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run `predict` over every labelled image; optionally save per-frame PNGs under `save_pred`
    (`trainIds/<frame>_pred_labelTrainIds.png` and `color/<frame>_pred_color.png`)."""
    from edgeseg.data.image_io import write_png

    cm = ConfusionMatrix()
    for i, sample in enumerate(dataset.samples):
        image, gt = dataset[i]
        if gt is None:
            raise DatasetError(f"{sample.image} has no label; evaluation needs a labelled split")
        pred = predict(image)
        cm.update(pred, gt)
        if save_pred is not None:
            # trainIds/ evaluates with `--predictions DIR/trainIds`; color/ is for looking at.
            write_png(Path(save_pred) / "trainIds" / f"{sample.frame_id}_pred_labelTrainIds.png", pred)
            write_png(Path(save_pred) / "color" / f"{sample.frame_id}_pred_color.png", colorize(pred))
        if progress:
            progress(i + 1, len(dataset))
    return EvalResult(
        cm.matrix, info={"dataset": dataset.name, "split": dataset.split, "images": len(dataset)}
    )


def normalize_image(
    bgr: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """BGR uint8 HxWx3 -> float32 (1,3,H,W) RGB normalised with 0..255-unit mean/std (the runtimes' rule)."""
    return normalize_batch([bgr], bgr.shape[:2], mean, std)


def _upsample_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """(1,C,h,w) -> (C,H,W) bilinear (align_corners=False, like F.interpolate); cv2 takes <=512 channels."""
    chw = logits[0]
    if chw.shape[1:] == (height, width):
        return chw
    hwc = cv2.resize(
        np.ascontiguousarray(chw.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_LINEAR
    )
    return hwc.reshape(height, width, -1).transpose(2, 0, 1)


def slide_logits(
    logits_fn: LogitsFn, x: np.ndarray, crop: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Sliding-window inference (mmseg 'slide'): average full-resolution logits over overlapping crops."""
    _, _, h, w = x.shape
    ch, cw = min(crop[0], h), min(crop[1], w)
    sh, sw = stride
    rows = max(math.ceil((h - ch) / sh), 0) + 1
    cols = max(math.ceil((w - cw) / sw), 0) + 1
    total: np.ndarray | None = None
    count = np.zeros((h, w), np.float32)
    for r in range(rows):
        for c in range(cols):
            y0 = min(r * sh, h - ch)
            x0 = min(c * sw, w - cw)
            out = _upsample_logits(
                logits_fn(np.ascontiguousarray(x[:, :, y0 : y0 + ch, x0 : x0 + cw])), ch, cw
            )
            if total is None:
                total = np.zeros((out.shape[0], h, w), np.float32)
            total[:, y0 : y0 + ch, x0 : x0 + cw] += out
            count[y0 : y0 + ch, x0 : x0 + cw] += 1
    assert total is not None
    return total / count


def make_predictor(
    logits_fn: LogitsFn,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    mode: str = "whole",
    crop: tuple[int, int] = (512, 1024),
    stride: tuple[int, int] | None = None,
) -> Predictor:
    """Wrap any logits function (torch, ONNX Runtime, TensorRT) into a BGR -> trainIds predictor."""
    if mode not in ("whole", "slide"):
        raise ValueError(f"inference mode must be 'whole' or 'slide', not {mode!r}")
    stride = stride or (crop[0] * 2 // 3, crop[1] * 2 // 3)

    def predict(bgr: np.ndarray) -> np.ndarray:
        x = normalize_image(bgr, mean, std)
        h, w = bgr.shape[:2]
        logits = (
            slide_logits(logits_fn, x, crop, stride)
            if mode == "slide"
            else _upsample_logits(logits_fn(x), h, w)
        )
        return logits.argmax(axis=0).astype(np.uint8)

    return predict


def torch_logits_fn(model: Any, device: str = "cpu") -> LogitsFn:
    """Adapt an eval-mode torch segmentor (normalised RGB -> logits) to a numpy `LogitsFn`."""
    import torch

    model = model.to(device).eval()

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        out = model(torch.from_numpy(x).to(device))
        return out.float().cpu().numpy()

    return run


def check_model_classes(meta: dict, source: str, num_classes: int = len(CLASSES)) -> None:
    """Refuse a model whose class count differs from the datasets' (the 19 Cityscapes trainIds): its
    predictions would be scored against the wrong classes and the mIoU would mean nothing."""
    from edgeseg.errors import ModelMismatchError

    n = meta.get("num_classes")
    if n != num_classes:
        raise ModelMismatchError(
            f"'{source}' predicts {n} classes but the evaluation datasets use {num_classes} "
            "(Cityscapes trainIds); evaluate a model trained for these classes"
        )


def checkpoint_predictor(
    path: str | Path,
    mode: str = "whole",
    crop: tuple[int, int] = (512, 1024),
    stride: tuple[int, int] | None = None,
    device: str = "cpu",
) -> tuple[Predictor, dict]:
    """Load an edgeseg checkpoint and return (predictor, model.meta). Imports torch."""
    from edgeseg.checkpoint import load_model

    model = load_model(path)
    meta = dict(getattr(model, "meta", {}) or {})
    check_model_classes({"num_classes": model.num_classes, **meta}, str(path))
    mean = meta.get("mean", IMAGENET_MEAN)
    std = meta.get("std", IMAGENET_STD)
    return make_predictor(torch_logits_fn(model, device), mean, std, mode, crop, stride), meta


@contextmanager
def open_predictor(
    model: str | Path,
    backend: str = "auto",
    mode: str = "whole",
    crop: tuple[int, int] = (512, 1024),
    stride: tuple[int, int] | None = None,
    device: str = "cpu",
) -> Iterator[Predictor]:
    """A predictor for any model file the runtime backend table runs, chosen by its suffix (or `backend`),
    closed at exit. A PyTorch checkpoint (a row that needs torch) runs whole or sliding-window on `device`;
    an exported model (.onnx, engines) runs whole images through its `Segmenter`."""
    from edgeseg.deploy.runtime.backends import backend_for, get_backend, segmenter_predictor
    from edgeseg.errors import ConfigError

    spec = get_backend(backend_for(Path(model), backend))
    if spec.needs_torch:
        from edgeseg.devices import check_device

        predictor, _ = checkpoint_predictor(model, mode, crop, stride, check_device(device))
        yield predictor
        return
    if mode != "whole":
        raise ConfigError(
            f"--mode slide needs a .safetensors checkpoint; '{Path(model).name}' is an exported "
            "model with a fixed inference size, evaluate it with --mode whole"
        )
    with segmenter_predictor(model, backend=spec.name) as (predictor, meta):
        check_model_classes(meta, str(model))
        yield predictor
