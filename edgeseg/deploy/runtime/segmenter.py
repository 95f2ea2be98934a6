"""The `Segmenter` interface every runtime backend implements (one module per backend, one row in
`edgeseg.deploy.runtime.backends.BACKENDS`).

    with open_segmenter("model.onnx") as seg:       # or model.engine, or student.safetensors
        labels = seg.predict([frame_bgr])[0]         # uint8 (H, W) class ids at the frame's size

A backend subclasses `Segmenter`, implements `infer` (and `synchronize` / `close` where it holds device
state), and takes `(path, backend=NAME, size=None, **its_options)` in its constructor: the options it
honours are the ones its table row lists. Model facts (classes, palette, mean/std, output kind, input
size) come from the file itself: ONNX metadata_props, the engine's sidecar JSON, or the checkpoint
header. Pre/post-processing conventions are documented in `edgeseg.deploy.runtime.preprocess`.
Torch-free.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.deploy.runtime.preprocess import (
    check_frames,
    label_dtype,
    normalize_batch,
    resize_labels,
    scores_to_labels,
    uint8_batch,
)
from edgeseg.errors import RuntimeBackendError

if TYPE_CHECKING:
    from edgeseg.deploy.runtime.backends import BackendSpec


MIN_INPUT_SIDE = 32  # MiT: stride 32, and stage 1 (1/4) must cover an 8x8 spatial-reduction kernel


class Segmenter:
    """Base class: backends implement `infer` (and `synchronize` when asynchronous, `close` when they hold
    a session or device memory). A context manager: `with open_segmenter(p) as seg:` closes it.

    `meta` holds classes, palette, mean, std, output ("labels"|"logits"|"probs"), preprocess (bool) and
    whatever else the model file recorded. `input_size` is the fixed (h, w) of the model input, or None
    when the model takes any size (then `size=` from `open_segmenter`, else each frame's own size).
    `batch_size` is the fixed batch of the model, or None when dynamic.
    """

    backend: str = ""

    def __init__(
        self,
        path: str | os.PathLike[str],
        meta: dict[str, Any],
        input_size: tuple[int, int] | None,
        batch_size: int | None,
        size: tuple[int, int] | None,
    ) -> None:
        self.path = Path(path)
        self.meta = meta
        self.input_size = input_size
        self.batch_size = batch_size
        if size is not None and input_size is not None and tuple(size) != tuple(input_size):
            raise RuntimeBackendError(
                f"'{self.path.name}' was exported for {input_size[0]}x{input_size[1]} input, not "
                f"{size[0]}x{size[1]}; export again with --size {size[0]}x{size[1]} (or --dynamic)"
            )
        self._run_size = tuple(input_size or size) if (input_size or size) else None
        self.labels_dtype = label_dtype(int(meta["num_classes"]))

    # -- facts -------------------------------------------------------------------------------------------
    @property
    def output_kind(self) -> str:
        return self.meta["output"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def palette(self) -> list[list[int]]:
        return [list(c) for c in self.meta["palette"]]

    def __repr__(self) -> str:
        size = "x".join(map(str, self.input_size)) if self.input_size else "dynamic"
        return f"<{type(self).__name__} {self.path.name} backend={self.backend} input={size} output={self.output_kind}>"

    # -- pipeline ----------------------------------------------------------------------------------------
    def run_size(self, frames: Sequence[np.ndarray]) -> tuple[int, int]:
        """The (h, w) frames are resized to before inference."""
        if self._run_size is not None:
            return self._run_size  # type: ignore[return-value]
        return tuple(frames[0].shape[:2])  # type: ignore[return-value]

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """BGR uint8 HxWx3 frames -> the model's input batch (all frames resized to one size)."""
        check_frames(frames)
        size = self.run_size(frames)
        if min(size) < MIN_INPUT_SIDE:
            raise RuntimeBackendError(
                f"input {size[0]}x{size[1]} is smaller than the network's minimum of "
                f"{MIN_INPUT_SIDE}x{MIN_INPUT_SIDE} pixels (its stride); use larger images "
                "or --size"
            )
        if self.meta.get("preprocess"):
            return uint8_batch(frames, size)
        return normalize_batch(frames, size, self.meta["mean"], self.meta["std"])

    def infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def postprocess(self, output: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Raw model output -> one label map per frame at that frame's (h, w)."""
        if len(output) != len(sizes):
            raise RuntimeBackendError(f"{len(output)} outputs for {len(sizes)} frame sizes")
        if self.output_kind == "labels":
            return [
                resize_labels(o.astype(self.labels_dtype, copy=False), tuple(s))
                for o, s in zip(output, sizes, strict=True)
            ]
        return [scores_to_labels(o, tuple(s), self.labels_dtype) for o, s in zip(output, sizes, strict=True)]

    def predict(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """postprocess(infer(preprocess(frames))), in chunks of the model's fixed batch size; frames of
        different sizes are fine (each label map comes back at its own frame's size)."""
        check_frames(frames)
        sizes = [tuple(f.shape[:2]) for f in frames]
        if self._run_size is None and len(set(sizes)) > 1:  # dynamic model, mixed sizes: one at a time
            return [self.predict([f])[0] for f in frames]
        step = self.batch_size or len(frames)
        labels: list[np.ndarray] = []
        for start in range(0, len(frames), step):
            chunk = list(frames[start : start + step])
            real = len(chunk)
            chunk += [chunk[-1]] * (step - real)  # fixed-batch models: pad the last chunk
            out = self.infer(self.preprocess(chunk))[:real]
            labels += self.postprocess(out, sizes[start : start + real])
        return labels

    def synchronize(self) -> None:
        """Wait for queued device work (GPU backends); a no-op on the CPU."""

    def close(self) -> None:
        """Release the session / engine / device buffers. Safe to call twice."""

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @classmethod
    def is_available(cls, spec: BackendSpec) -> bool:
        """Whether `spec` can run here, from import checks only (nothing heavy is imported). Backends
        that also need a provider or device (ONNX Runtime's execution providers) refine this."""
        return installed(spec.module)


def installed(module: str) -> bool:
    """`module` is importable (found, not imported); a broken or deliberately blocked install counts as absent."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_batch(
    batch: np.ndarray, expected_shape: Sequence[int | None], expected_dtype: np.dtype, model: str
) -> None:
    """One clear line when a batch does not fit the model input (shape entries None are dynamic)."""
    shape_ok = batch.ndim == len(expected_shape) and all(
        e is None or e == s for e, s in zip(expected_shape, batch.shape, strict=False)
    )
    if not shape_ok or batch.dtype != expected_dtype:
        want = "x".join("?" if e is None else str(e) for e in expected_shape)
        got = "x".join(map(str, batch.shape))
        raise RuntimeBackendError(
            f"'{model}' expects input {want} {expected_dtype}, got {got} {batch.dtype}; "
            "use Segmenter.preprocess (or predict) to resize frames, or re-export the "
            "model for this size with `edgeseg export --size HxW` / `--dynamic`"
        )
