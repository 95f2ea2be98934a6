"""One small runtime interface over every way edgeseg runs a model.

    seg = open_segmenter("model.onnx")            # or model.engine, or student.safetensors
    labels = seg.predict([frame_bgr])[0]           # uint8 (H, W) class ids at the frame's size

Backends: "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-trt" (ONNX Runtime execution providers),
"tensorrt" (native engine files from `edgeseg build-engine`), "torch" (edgeseg .safetensors checkpoints).
The backend follows from the file type unless `backend=` names one. Torch-free at import time: only the
"torch" backend imports torch, inside its constructor. Model facts (classes, palette, mean/std, output
kind, input size) come from the file itself: ONNX metadata_props, the engine's sidecar JSON, or the
checkpoint header. Pre/post-processing conventions are documented in `edgeseg.deploy.runtime.preprocess`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.deploy.runtime import onnx_meta
from edgeseg.deploy.runtime.preprocess import (
    check_frames,
    label_dtype,
    normalize_batch,
    resize_labels,
    scores_to_labels,
    uint8_batch,
)
from edgeseg.errors import InputPathError, RuntimeBackendError

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-trt", "tensorrt", "torch")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
_ORT_PROVIDERS = {
    "onnxruntime-cpu": "CPUExecutionProvider",
    "onnxruntime-cuda": "CUDAExecutionProvider",
    "onnxruntime-trt": "TensorrtExecutionProvider",
}


MIN_INPUT_SIDE = 32  # MiT: stride 32, and stage 1 (1/4) must cover an 8x8 spatial-reduction kernel

class Segmenter:
    """Base class: backends implement `infer` (and `synchronize` when asynchronous).

    `meta` holds classes, palette, mean, std, output ("labels"|"logits"|"probs"), preprocess (bool) and
    whatever else the model file recorded. `input_size` is the fixed (h, w) of the model input, or None
    when the model takes any size (then `size=` from `open_segmenter`, else each frame's own size).
    `batch_size` is the fixed batch of the model, or None when dynamic.
    """

    backend: str = ""

    def __init__(self, path: str | os.PathLike[str], meta: dict[str, Any], input_size: tuple[int, int] | None,
                 batch_size: int | None, size: tuple[int, int] | None) -> None:
        self.path = Path(path)
        self.meta = meta
        self.input_size = input_size
        self.batch_size = batch_size
        if size is not None and input_size is not None and tuple(size) != tuple(input_size):
            raise RuntimeBackendError(
                f"'{self.path.name}' was exported for {input_size[0]}x{input_size[1]} input, not "
                f"{size[0]}x{size[1]}; export again with --size {size[0]}x{size[1]} (or --dynamic)")
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
            raise RuntimeBackendError(f"input {size[0]}x{size[1]} is smaller than the network's minimum of "
                                      f"{MIN_INPUT_SIDE}x{MIN_INPUT_SIDE} pixels (its stride); use larger images "
                                      "or --size")
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
            return [resize_labels(o.astype(self.labels_dtype, copy=False), tuple(s))
                    for o, s in zip(output, sizes, strict=True)]
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
            chunk = list(frames[start:start + step])
            real = len(chunk)
            chunk += [chunk[-1]] * (step - real)  # fixed-batch models: pad the last chunk
            out = self.infer(self.preprocess(chunk))[:real]
            labels += self.postprocess(out, sizes[start:start + real])
        return labels

    def synchronize(self) -> None:
        """Wait for queued device work (GPU backends); a no-op on the CPU."""

    def close(self) -> None:
        """Release the session / engine / device buffers."""


def check_batch(batch: np.ndarray, expected_shape: Sequence[int | None], expected_dtype: np.dtype,
                model: str) -> None:
    """One clear line when a batch does not fit the model input (shape entries None are dynamic)."""
    shape_ok = batch.ndim == len(expected_shape) and all(
        e is None or e == s for e, s in zip(expected_shape, batch.shape, strict=False))
    if not shape_ok or batch.dtype != expected_dtype:
        want = "x".join("?" if e is None else str(e) for e in expected_shape)
        got = "x".join(map(str, batch.shape))
        raise RuntimeBackendError(f"'{model}' expects input {want} {expected_dtype}, got {got} {batch.dtype}; "
                                  "use Segmenter.preprocess (or predict) to resize frames, or re-export the "
                                  "model for this size with `edgeseg export --size HxW` / `--dynamic`")


def _peek_precision(path: str | os.PathLike[str]) -> str:
    """The precision recorded in an ONNX file's metadata (read without building a session)."""
    try:
        return str(onnx_meta.read_onnx_file_meta(str(path)).get("precision", "fp32"))
    except (ImportError, RuntimeBackendError):
        return "fp32"


def _static_dim(d: Any) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


class OnnxRuntimeSegmenter(Segmenter):
    """ONNX Runtime with the CPU, CUDA or TensorRT execution provider."""

    def __init__(self, path: str | os.PathLike[str], backend: str = "onnxruntime-cpu",
                 size: tuple[int, int] | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeBackendError("onnxruntime is not installed: pip install 'edgeseg[cpu]' "
                                      "(or onnxruntime-gpu)") from None
        provider = _ORT_PROVIDERS[backend]
        if provider not in ort.get_available_providers():
            raise RuntimeBackendError(f"backend {backend} needs ONNX Runtime's {provider}, which this "
                                      f"onnxruntime build lacks (has {ort.get_available_providers()}); "
                                      f"install onnxruntime-gpu or pick one of {available_backends()}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers: list[Any] = [provider]
        if backend == "onnxruntime-trt":
            # engines cached next to the model (the first session builds them: minutes on a Jetson); FP16
            # kernels only for graphs exported --fp16, so the precision is what the file says
            cache = str(Path(path).with_suffix("")) + ".ort-trt-cache"
            fp16 = _peek_precision(path) == "fp16"
            providers = [(provider, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                                     "trt_fp16_enable": fp16}), "CUDAExecutionProvider"]
        if backend != "onnxruntime-cpu":
            providers.append("CPUExecutionProvider")  # for the few ops a GPU provider lacks
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises Fail / InvalidProtobuf / InvalidGraph, all multi-line
            raise RuntimeBackendError(f"cannot load '{path}' with ONNX Runtime ({onnx_meta.one_line(exc)}); "
                                      "the file may be truncated or not an ONNX model: export it again") from None
        if provider not in self._session.get_providers():  # ORT falls back silently; we do not
            raise RuntimeBackendError(f"ONNX Runtime could not start {provider} for '{path}' "
                                      f"(running providers: {self._session.get_providers()}); check the CUDA "
                                      "/ TensorRT installation or use --backend onnxruntime-cpu")
        self.backend = backend
        meta = onnx_meta.decode(self._session.get_modelmeta().custom_metadata_map, str(path))
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = self._session.get_outputs()[0].name
        self._input_shape = [_static_dim(d) for d in inp.shape]
        self._input_dtype = np.dtype(np.uint8 if meta.get("preprocess") else np.float32)
        hw = self._input_shape[1:3] if meta.get("preprocess") else self._input_shape[2:4]
        input_size = (hw[0], hw[1]) if None not in hw else None
        super().__init__(path, meta, input_size, self._input_shape[0], size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self._input_shape, self._input_dtype, self.path.name)
        try:
            return self._session.run([self._output_name], {self._input_name: batch})[0]
        except Exception as exc:
            raise RuntimeBackendError(f"ONNX Runtime failed on '{self.path.name}': {onnx_meta.one_line(exc)}") from None

    def close(self) -> None:
        self._session = None


class TorchSegmenter(Segmenter):
    """An edgeseg .safetensors checkpoint run by PyTorch (CUDA when available). Output: logits."""

    backend = "torch"

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int] | None = None,
                 device: str | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise RuntimeBackendError("the torch backend needs PyTorch; on a device without it, export the "
                                      "checkpoint (`edgeseg export`) and run the ONNX file") from None
        from edgeseg.checkpoint import load_model

        self._torch = torch
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._model = load_model(path).to(self._device)
        meta = dict(self._model.meta)
        meta.update(num_classes=self._model.num_classes, arch=self._model.arch, output="logits",
                    preprocess=False, input_size=None)
        super().__init__(path, meta, None, None, size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, [None, 3, None, None], np.dtype(np.float32), self.path.name)
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(batch).to(self._device)).float().cpu().numpy()

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            self._torch.cuda.synchronize(self._device)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or deliberately blocked install counts as absent
        return False


def available_backends() -> list[str]:
    """Backends usable here (import checks only: neither torch nor tensorrt is imported)."""
    found = []
    if _installed("onnxruntime"):
        import onnxruntime as ort

        providers = ort.get_available_providers()
        found += [name for name, p in _ORT_PROVIDERS.items() if p in providers]
    if _installed("tensorrt"):
        found.append("tensorrt")
    if _installed("torch"):
        found.append("torch")
    return found


def backend_for(path: Path, backend: str = "auto") -> str:
    """The backend a file runs with: `backend` if it fits the file type, else the default for it."""
    suffix = path.suffix.lower()
    kind = "onnx" if suffix == ".onnx" else "engine" if suffix in ENGINE_SUFFIXES else \
        "checkpoint" if suffix == ".safetensors" else None
    if kind is None:
        raise RuntimeBackendError(f"cannot tell the model type of '{path.name}': expected .onnx, an engine "
                                  f"({'/'.join(ENGINE_SUFFIXES)}) or an edgeseg .safetensors checkpoint")
    if backend == "auto":
        if kind == "engine":
            return "tensorrt"
        if kind == "checkpoint":
            return "torch"
        return "onnxruntime-cuda" if "onnxruntime-cuda" in available_backends() else "onnxruntime-cpu"
    if backend not in BACKENDS:
        raise RuntimeBackendError(f"unknown backend '{backend}'; choose auto or one of {', '.join(BACKENDS)}")
    fits = {"onnx": backend.startswith("onnxruntime"), "engine": backend == "tensorrt",
            "checkpoint": backend == "torch"}[kind]
    if not fits:
        hint = {"tensorrt": "build an engine first: edgeseg build-engine model.onnx --out model.engine",
                "torch": "the torch backend runs edgeseg .safetensors checkpoints"}.get(
            backend, "ONNX Runtime backends run .onnx files; export one with `edgeseg export`")
        raise RuntimeBackendError(f"backend {backend} cannot run '{path.name}'; {hint}")
    return backend


def open_segmenter(path: str | os.PathLike[str], backend: str = "auto",
                   size: tuple[int, int] | None = None, **options: Any) -> Segmenter:
    """Open a model file with the right backend. `size` = inference (h, w) for dynamic-size models (must
    match a fixed-size model's own size). `options`: threads= (ONNX Runtime CPU), device= (torch)."""
    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"model file '{path}' does not exist; check the path")
    chosen = backend_for(path, backend)
    if chosen.startswith("onnxruntime"):
        return OnnxRuntimeSegmenter(path, chosen, size=size, threads=options.get("threads"))
    if chosen == "tensorrt":
        from edgeseg.deploy.runtime.tensorrt_backend import TensorRTSegmenter

        return TensorRTSegmenter(path, size=size)
    return TorchSegmenter(path, size=size, device=options.get("device"))


def segmenter_predictor(path: str | os.PathLike[str], backend: str = "auto", size: tuple[int, int] | None = None,
                        **options: Any) -> tuple[Any, dict[str, Any]]:
    """(predictor, meta) for evaluation code: predictor(bgr uint8 HxWx3) -> uint8 HxW labels, through any
    backend (`edgeseg eval` on .onnx / .engine / .safetensors)."""
    seg = open_segmenter(path, backend=backend, size=size, **options)
    return (lambda bgr: seg.predict([bgr])[0]), dict(seg.meta)
