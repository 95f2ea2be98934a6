"""Frame pre- and post-processing shared by every runtime backend (numpy + OpenCV, torch-free).

Pre: frames are BGR uint8 HxWx3 (what OpenCV and cameras give). They are resized to the model input size
(bilinear), then either normalised into a float32 RGB NCHW batch, or — for graphs exported with
`--preprocess` — stacked as a uint8 BGR NHWC batch that the graph normalises itself.

Post: labels always come back at each frame's original size, as uint8 (int32 above 256 classes):
* `labels` output (already at model input resolution, computed in the graph as argmax of bilinearly
  upsampled logits): resized to the frame with nearest neighbour;
* `logits` / `probs` output (1/4 resolution): bilinearly resized straight to the frame size, then argmax.
  This is one resampling step, like evaluation in PyTorch; when the frame already has the model input
  size it is exactly the graph's own `labels` computation.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgeseg.errors import RuntimeBackendError

_CV_MAX_CHANNELS = 512  # cv2.resize handles at most CV_CN_MAX channels per call


def check_frames(frames: Sequence[np.ndarray]) -> None:
    if len(frames) == 0:
        raise RuntimeBackendError("no frames given; pass a list of BGR uint8 HxWx3 images")
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            desc = f"{f.dtype} {f.shape}" if isinstance(f, np.ndarray) else type(f).__name__
            raise RuntimeBackendError(
                f"frame {i} is {desc}; frames must be BGR uint8 HxWx3 arrays "
                "(as cv2.imread / VideoCapture return)"
            )


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to (h, w); a frame already at that size is returned as is (no copy)."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def normalize_batch(
    frames: Sequence[np.ndarray], size: tuple[int, int], mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """BGR uint8 frames -> float32 (B,3,h,w) RGB batch, (x - mean) / std with mean/std in 0..255 units."""
    h, w = size
    out = np.empty((len(frames), 3, h, w), dtype=np.float32)
    mean_a = np.asarray(mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(std, dtype=np.float32)
    for i, frame in enumerate(frames):
        rgb = cv2.cvtColor(resize_frame(frame, size), cv2.COLOR_BGR2RGB).astype(np.float32)
        np.multiply(rgb - mean_a, inv_std, out=rgb)
        out[i] = rgb.transpose(2, 0, 1)
    return out


def uint8_batch(frames: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """BGR uint8 frames -> uint8 (B,h,w,3) BGR batch for graphs with preprocessing built in."""
    return np.stack([resize_frame(f, size) for f in frames])


def label_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 256 else np.dtype(np.int32)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) label map -> (H, W) with nearest neighbour (labels must never be interpolated)."""
    h, w = size
    if labels.shape == (h, w):
        return labels
    if labels.dtype == np.uint8:
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    # cv2 nearest is not defined for int32/int64 label maps everywhere: index arithmetic instead,
    # with the same pixel-centre convention as cv2's INTER_NEAREST (floor(dst * src / dst_size)).
    rows = np.minimum((np.arange(h) * labels.shape[0]) // h, labels.shape[0] - 1)
    cols = np.minimum((np.arange(w) * labels.shape[1]) // w, labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def scores_to_labels(scores: np.ndarray, size: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """(C, h, w) logits or probabilities -> (H, W) labels: bilinear resize (half-pixel centres, as
    torch's align_corners=False) of the scores, then argmax over classes."""
    h, w = size
    hwc = np.ascontiguousarray(scores.transpose(1, 2, 0), dtype=np.float32)
    if hwc.shape[:2] != (h, w):
        parts = [
            cv2.resize(hwc[..., i : i + _CV_MAX_CHANNELS], (w, h), interpolation=cv2.INTER_LINEAR)
            for i in range(0, hwc.shape[2], _CV_MAX_CHANNELS)
        ]
        parts = [p[..., None] if p.ndim == 2 else p for p in parts]  # cv2 drops a single channel axis
        hwc = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    return hwc.argmax(axis=2).astype(dtype, copy=False)
