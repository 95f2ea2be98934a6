"""Native TensorRT backend: runs `edgeseg build-engine` engine files (TensorRT 8.6 / 10.x / 11.x tensor API).

TensorRT and cuda-python are imported lazily inside the constructor (CUDA helpers:
`edgeseg.deploy.trt.cuda_helpers`). Before the engine is deserialized,
its sidecar JSON is compared with this machine (TensorRT version, GPU compute capability): an engine built
elsewhere is refused with one line telling the user to rebuild it on the device. A DLA engine is loaded
on the DLA core the sidecar records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.deploy.runtime.backends import get_backend
from edgeseg.deploy.runtime.segmenter import Segmenter, check_batch
from edgeseg.deploy.trt import cuda_helpers as trt_cuda
from edgeseg.deploy.trt.cuda_helpers import cuda_call
from edgeseg.deploy.trt.engine_meta import read_sidecar, require_compatible
from edgeseg.errors import RuntimeBackendError


def set_dla_core(runtime: Any, dla_core: int | None, path: Path) -> None:
    """An engine built for DLA core N must be deserialized with runtime.DLA_core = N (AGX Orin has 0 and 1)."""
    if dla_core is None:
        return
    cores = int(runtime.num_DLA_cores)
    if not 0 <= int(dla_core) < cores:
        raise RuntimeBackendError(
            f"engine '{path}' was built for DLA core {dla_core}, this device has {cores} DLA "
            "core(s); rebuild it here with `edgeseg build-engine` (without --dla if none)"
        )
    runtime.DLA_core = int(dla_core)


class TensorRTSegmenter(Segmenter):
    backend = "tensorrt"

    def __init__(
        self, path: str | os.PathLike[str], backend: str = "tensorrt", size: tuple[int, int] | None = None
    ) -> None:
        try:
            import tensorrt as trt
        except ImportError:
            raise RuntimeBackendError(
                f"TensorRT is not installed here ({get_backend(backend).install}); run "
                "the .onnx file with onnxruntime instead"
            ) from None
        cudart = trt_cuda.import_cudart()
        self._trt, self._cudart = trt, cudart
        path = Path(path)
        sidecar = read_sidecar(path)
        require_compatible(path, sidecar, trt_cuda.current_device_facts(trt, cudart))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        set_dla_core(self._runtime, sidecar.get("dla_core"), path)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise RuntimeBackendError(
                f"TensorRT could not deserialize '{path}' (truncated or corrupt file?); "
                "rebuild it with `edgeseg build-engine`"
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeBackendError(
                f"'{path}' has inputs {inputs} and outputs {outputs}; edgeseg engines have "
                "exactly one of each"
            )
        self._in, self._out = inputs[0], outputs[0]
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._in)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._out)))
        shape = [int(d) for d in engine.get_tensor_shape(self._in)]
        self._input_shape = [d if d > 0 else None for d in shape]
        self._max_shape = shape
        if None in self._input_shape:
            lo, _opt, hi = ([int(d) for d in s] for s in engine.get_tensor_profile_shape(self._in, 0))
            self._max_shape = hi
            # a dimension whose profile is min == max is fixed in practice: treat it as static
            self._input_shape = [
                d if d is not None else (lo[i] if lo[i] == hi[i] else None)
                for i, d in enumerate(self._input_shape)
            ]
        self._dynamic_input = -1 in shape
        self._stream = cuda_call(cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        meta = dict(sidecar["model"])
        hw = self._input_shape[1:3] if meta.get("preprocess") else self._input_shape[2:4]
        input_size = (hw[0], hw[1]) if None not in hw else None
        super().__init__(path, meta, input_size, self._input_shape[0], size)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        """Device memory for `name`, reallocated only when a larger size is needed."""
        ptr, size = self._buffers.get(name, (0, 0))
        if nbytes > size:
            if ptr:
                cuda_call(self._cudart.cudaFree(ptr))
            ptr = cuda_call(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self._input_shape, self._in_dtype, self.path.name)
        if any(s > m for s, m in zip(batch.shape, self._max_shape, strict=True)):
            raise RuntimeBackendError(
                f"input {batch.shape} exceeds the engine's optimisation profile maximum "
                f"{tuple(self._max_shape)}; rebuild with a larger --max-size"
            )
        cudart, ctx = self._cudart, self._context
        batch = np.ascontiguousarray(batch)
        if self._dynamic_input:
            ctx.set_input_shape(self._in, tuple(batch.shape))
        out_shape = tuple(int(d) for d in ctx.get_tensor_shape(self._out))
        out = np.empty(out_shape, dtype=self._out_dtype)
        d_in = self._device_buffer(self._in, batch.nbytes)
        d_out = self._device_buffer(self._out, out.nbytes)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(cudart.cudaMemcpyAsync(d_in, batch.ctypes.data, batch.nbytes, h2d, self._stream))
        ctx.set_tensor_address(self._in, int(d_in))
        ctx.set_tensor_address(self._out, int(d_out))
        if not ctx.execute_async_v3(stream_handle=int(self._stream)):
            raise RuntimeBackendError(f"TensorRT failed to run '{self.path.name}'")
        cuda_call(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self._stream))
        self.synchronize()
        return out

    def synchronize(self) -> None:
        cuda_call(self._cudart.cudaStreamSynchronize(self._stream))

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            cuda_call(self._cudart.cudaFree(ptr))
        self._buffers.clear()
        if self._stream is not None:
            cuda_call(self._cudart.cudaStreamDestroy(self._stream))
            self._stream = None
