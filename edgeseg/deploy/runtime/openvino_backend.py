"""OpenVINO on the CPU: edgeseg ONNX files (`edgeseg export`, best with `--for openvino`) and OpenVINO IR
(`edgeseg export --for openvino --out model.xml`, which also carries bf16 / INT8 models). Torch-free;
openvino is imported when a model is opened.

The inference precision is what the file says, never OpenVINO's default: OpenVINO runs float models in
bf16 on CPUs that have it unless told otherwise, so FP32 files run with INFERENCE_PRECISION_HINT f32 and
only files exported `--bf16` (parity-checked in bf16) run in bf16, and INT8 IR runs its float layers in bf16.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from edgeseg.deploy.runtime import onnx_meta
from edgeseg.deploy.runtime.backends import get_backend
from edgeseg.deploy.runtime.segmenter import Segmenter, check_batch
from edgeseg.errors import RuntimeBackendError

# rt_info sections the metadata is read from: IR written by edgeseg, and ONNX metadata_props as OpenVINO's
# ONNX frontend exposes them
RT_INFO_SECTIONS = ("edgeseg", "framework")
# file precision -> OpenVINO CPU inference precision where the CPU has bf16 (else f32 throughout). INT8 IR:
# the layers NNCF leaves float run in bf16 (measured on the trained B0: 1.6x faster than f32 for the same
# label agreement with FP32); the export's parity check runs exactly this configuration.
INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f32", "bf16": "bf16", "int8": "bf16"}

_log = logging.getLogger("edgeseg")


def read_meta(model: Any, source: str) -> dict[str, Any]:
    """The edgeseg metadata of an `openvino.Model` (IR rt_info or ONNX metadata_props), validated."""
    props: dict[str, str] = {}
    for key in onnx_meta.KEYS:
        for section in RT_INFO_SECTIONS:
            if model.has_rt_info([section, key]):
                props[key] = model.get_rt_info([section, key]).astype(str)
                break
    return onnx_meta.decode(props, source)


def cpu_has_bf16(core: Any) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_config(precision: str, threads: int | None, bf16_ok: bool) -> dict[str, Any]:
    """OpenVINO CPU properties for a file of `precision` (see the module docstring)."""
    hint = INFERENCE_PRECISION[precision]
    if hint == "bf16" and not bf16_ok:
        hint = "f32"
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class OpenVINOSegmenter(Segmenter):
    """OpenVINO's CPU plugin on an edgeseg .onnx or OpenVINO IR .xml (+ .bin) file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "openvino",
        size: tuple[int, int] | None = None,
        threads: int | None = None,
    ) -> None:
        spec = get_backend(backend)
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeBackendError(f"openvino is not installed: {spec.install}") from None
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError with a multi-line C++ trace
            raise RuntimeBackendError(
                f"cannot load '{path}' with OpenVINO ({onnx_meta.one_line(exc)}); the file "
                "may be truncated (an IR needs its .bin beside the .xml): export it again"
            ) from None
        meta = read_meta(model, str(path))
        precision = str(meta.get("precision", "fp32"))
        bf16_ok = cpu_has_bf16(core)
        if precision == "bf16" and not bf16_ok:
            _log.warning("%s was exported for bf16 but this CPU lacks bf16: running it in f32", path)
        config = compile_config(precision, threads, bf16_ok)
        meta["inference_precision"] = config["INFERENCE_PRECISION_HINT"]
        try:
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise RuntimeBackendError(
                f"OpenVINO cannot compile '{path}' for the CPU: {onnx_meta.one_line(exc)}"
            ) from None
        self._request = self._compiled.create_infer_request()
        self.backend = backend
        port = model.input(0)
        self._input_shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        self._input_dtype = np.dtype(np.uint8 if meta.get("preprocess") else np.float32)
        hw = self._input_shape[1:3] if meta.get("preprocess") else self._input_shape[2:4]
        input_size = (hw[0], hw[1]) if None not in hw else None
        super().__init__(path, meta, input_size, self._input_shape[0], size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self._input_shape, self._input_dtype, self.path.name)
        try:
            result = self._request.infer({0: np.ascontiguousarray(batch)})
        except Exception as exc:
            raise RuntimeBackendError(
                f"OpenVINO failed on '{self.path.name}': {onnx_meta.one_line(exc)}"
            ) from None
        return np.array(result[self._compiled.output(0)])  # a copy: the request reuses its output buffer

    def close(self) -> None:
        self._request = None
        self._compiled = None
