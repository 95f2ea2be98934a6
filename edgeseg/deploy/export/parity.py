"""Parity of an exported graph with the PyTorch model it came from (run after every export).

Both sides get the same frames through the runtime's own preprocessing (`edgeseg.deploy.runtime.preprocess`).
The reference is the PyTorch model's labels: argmax of its logits bilinearly upsampled to the input size.
Reported: the max absolute difference of the raw scores (logits, or probabilities for `probs` graphs) and
the fraction of pixels whose label agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgeseg.deploy.runtime.preprocess import normalize_batch, uint8_batch

# a model-ready batch -> the graph's first output (OpenVINO exports are checked through OpenVINO this way)
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class ParityResult:
    images: int
    sizes: list[list[int]]
    source: str
    max_abs_diff: float | None  # of logits (or probs for probs graphs); None if no score tensor was probed
    diff_of: str
    agreement: float  # fraction of label pixels equal to PyTorch's
    threshold: float

    @property
    def passed(self) -> bool:
        return self.agreement >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        diff = f"max |{self.diff_of} diff| {self.max_abs_diff:.2e}, " if self.max_abs_diff is not None else ""
        sizes = ", ".join(f"{h}x{w}" for h, w in self.sizes)
        return (
            f"parity vs PyTorch on {self.images} {self.source} images ({sizes}): {diff}"
            f"label agreement {100 * self.agreement:.3f}% (threshold {100 * self.threshold:.2f}%)"
        )


def _session(model: bytes | str, threads: int | None = None) -> Any:
    import onnxruntime as ort

    from edgeseg.deploy.runtime.onnx_meta import one_line
    from edgeseg.errors import ExportError

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # an exported graph ONNX Runtime rejects is an export failure, not a crash
        raise ExportError(f"ONNX Runtime rejects the exported graph: {one_line(exc)}") from None


def scores_to_label_tensor(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B,C,h,w) scores -> (B,H,W) labels exactly as the reference computes them (torch bilinear)."""
    up = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)),
        size=size,
        mode="bilinear",
        align_corners=False,
    )
    return up.argmax(1).numpy()


def run_graph(session: Any, batch: np.ndarray, batch_size: int | None) -> np.ndarray:
    """Run `batch` through an ORT session in chunks of its fixed batch size (None = all at once)."""
    name = session.get_inputs()[0].name
    step = batch_size or len(batch)
    return np.concatenate(
        [session.run(None, {name: batch[i : i + step]})[0] for i in range(0, len(batch), step)]
    )


def ort_runner(model: bytes | str, batch_size: int | None) -> Runner:
    """An ONNX Runtime CPU session on `model` (bytes or path) as a Runner (chunks of its fixed batch)."""
    session = _session(model)
    return lambda batch: run_graph(session, batch, batch_size)


def agreement_and_miou(
    reference: list[np.ndarray], other: list[np.ndarray], num_classes: int
) -> dict[str, float]:
    """Label agreement of `other` with `reference` and the mIoU of `other` scored against `reference` as
    ground truth (reference = 100): how INT8 compares with FP32 without labelled data."""
    from edgeseg.evaluate import ConfusionMatrix, mean_iou, per_class_iou

    matrix = ConfusionMatrix(num_classes)
    agree = total = 0
    for ref, q in zip(reference, other, strict=True):
        matrix.update(q, ref)
        agree += int((ref == q).sum())
        total += ref.size
    return {"agreement_vs_fp32": agree / total, "miou_vs_fp32": float(mean_iou(per_class_iou(matrix.matrix)))}


def check_parity(
    model: torch.nn.Module,
    final: bytes | str | Runner,
    probe: bytes | str | Runner | None,
    frame_sets: Sequence[Sequence[np.ndarray]],
    *,
    output: str,
    preprocess: bool,
    batch_size: int | None,
    threshold: float,
    source: str,
) -> ParityResult:
    """Compare the exported graph `final` (and the score graph `probe`, when the final output is labels)
    with `model` on each set of equally-sized frames. Graphs given as bytes or a path run in ONNX Runtime
    (CPU); a Runner runs them anywhere else."""
    mean, std = model.meta.get("mean"), model.meta.get("std")
    final_run = final if callable(final) else ort_runner(final, batch_size)
    probe_run = (probe if callable(probe) else ort_runner(probe, batch_size)) if probe is not None else None
    agree = total = 0
    max_diff = 0.0
    sizes: list[list[int]] = []
    count = 0
    for frames in frame_sets:
        size = tuple(frames[0].shape[:2])
        sizes.append(list(size))
        count += len(frames)
        x = normalize_batch(frames, size, mean, std)
        feed = uint8_batch(frames, size) if preprocess else x
        with torch.inference_mode():
            ref_logits = model(torch.from_numpy(x)).numpy()
        ref_scores = (
            ref_logits if output != "probs" else torch.softmax(torch.from_numpy(ref_logits), 1).numpy()
        )
        ref_labels = scores_to_label_tensor(ref_scores, size)  # probs graphs: argmax of upsampled probs
        out = final_run(feed)
        if output == "labels":
            labels = out.astype(np.int64)
            scores = probe_run(feed) if probe_run is not None else None
        else:
            labels = scores_to_label_tensor(out, size)
            scores = out
        if scores is not None:
            max_diff = max(max_diff, float(np.abs(scores.astype(np.float32) - ref_scores).max()))
        agree += int((labels == ref_labels).sum())
        total += labels.size
    return ParityResult(
        images=count,
        sizes=sizes,
        source=source,
        max_abs_diff=max_diff if (probe_run is not None or output != "labels") else None,
        diff_of="prob" if output == "probs" else "logit",
        agreement=agree / total,
        threshold=threshold,
    )
