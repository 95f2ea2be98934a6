"""CUDA helpers shared by the TensorRT engine build and the TensorRT runtime backend (cuda-python, imported
lazily). Torch-free."""

from __future__ import annotations

from typing import Any

from edgeseg.deploy.trt.engine_meta import DeviceFacts
from edgeseg.errors import RuntimeBackendError


def import_cudart() -> Any:
    """cuda-python's runtime module (its import path moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError:
            raise RuntimeBackendError(
                "the tensorrt backend needs cuda-python for device memory: "
                "pip install cuda-python (JetPack: the matching cuda-python wheel)"
            ) from None
    return cudart


def cuda_call(result: Any) -> Any:
    """cuda-python returns (error, *values): raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeBackendError(f"CUDA call failed with error {err}; is the GPU available?")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def current_device_facts(trt: Any, cudart: Any) -> DeviceFacts:
    device = cuda_call(cudart.cudaGetDevice())
    props = cuda_call(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return DeviceFacts(trt.__version__, name.strip("\x00 "), f"{props.major}.{props.minor}")
