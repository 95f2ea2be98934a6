"""ONNX Runtime backends: one class for the CPU, CUDA and TensorRT execution providers (the table's
"onnxruntime-*" rows say which provider each runs on). Torch-free; onnxruntime is imported when a model
is opened (or availability is checked)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.deploy.runtime import onnx_meta
from edgeseg.deploy.runtime.backends import BackendSpec, available_backends, get_backend
from edgeseg.deploy.runtime.segmenter import Segmenter, check_batch, installed
from edgeseg.errors import RuntimeBackendError


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "onnxruntime-cpu",
        size: tuple[int, int] | None = None,
        threads: int | None = None,
    ) -> None:
        spec = get_backend(backend)
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeBackendError(f"onnxruntime is not installed: {spec.install}") from None
        provider = str(spec.provider)
        if provider not in ort.get_available_providers():
            raise RuntimeBackendError(
                f"backend {backend} needs ONNX Runtime's {provider}, which this "
                f"onnxruntime build lacks (has {ort.get_available_providers()}); "
                f"{spec.install}, or pick one of {available_backends()}"
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers: list[Any] = [provider]
        if backend == "onnxruntime-trt":
            # engines cached next to the model (the first session builds them: minutes on a Jetson); FP16
            # kernels only for graphs exported --fp16, so the precision is what the file says
            cache = str(Path(path).with_suffix("")) + ".ort-trt-cache"
            fp16 = _peek_precision(path) == "fp16"
            providers = [
                (
                    provider,
                    {
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": cache,
                        "trt_fp16_enable": fp16,
                    },
                ),
                "CUDAExecutionProvider",
            ]
        if backend != "onnxruntime-cpu":
            providers.append("CPUExecutionProvider")  # for the few ops a GPU provider lacks
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises Fail / InvalidProtobuf / InvalidGraph, all multi-line
            raise RuntimeBackendError(
                f"cannot load '{path}' with ONNX Runtime ({onnx_meta.one_line(exc)}); "
                "the file may be truncated or not an ONNX model: export it again"
            ) from None
        if provider not in self._session.get_providers():  # ORT falls back silently; we do not
            raise RuntimeBackendError(
                f"ONNX Runtime could not start {provider} for '{path}' "
                f"(running providers: {self._session.get_providers()}); check the CUDA "
                "/ TensorRT installation or use --backend onnxruntime-cpu"
            )
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
            raise RuntimeBackendError(
                f"ONNX Runtime failed on '{self.path.name}': {onnx_meta.one_line(exc)}"
            ) from None

    def close(self) -> None:
        self._session = None

    @classmethod
    def is_available(cls, spec: BackendSpec) -> bool:
        if not installed("onnxruntime"):
            return False
        import onnxruntime as ort

        return spec.provider in ort.get_available_providers()
