"""A stand-in `tensorrt` module for tests without a GPU: just the API surface edgeseg uses, per release.

Which attributes exist follows NVIDIA/TensorRT's Python bindings (python/src/infer/pyCore.cpp, pyInt8.cpp):
8.6 has BuilderFlag.FP16/INT8, EXPLICIT_BATCH and IInt8EntropyCalibrator2; 10.x the same (explicit batch
deprecated); 11.x has no FP16/INT8 flags, no EXPLICIT_BATCH and no calibrators. It records what the build
did (flags set, network flags, DLA core, layer precisions) for the tests to check.
"""

from __future__ import annotations

import types
from enum import IntEnum
from typing import Any

import numpy as np


def make_tensorrt(
    version: str = "10.3.0",
    num_dla_cores: int = 0,
    input_shape: tuple[int, ...] = (1, 3, 64, 128),
    timing_cache_fits: bool = True,
) -> types.ModuleType:
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    trt.calls = {"flags": [], "network_flags": None, "dla_core": None, "layer_precision": 0}  # type: ignore[attr-defined]
    flags = ["GPU_FALLBACK", "REFIT"] + (["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"] if major < 11 else [])
    trt.BuilderFlag = IntEnum("BuilderFlag", flags, start=0)  # type: ignore[attr-defined]
    net_flags = (
        (["EXPLICIT_BATCH", "STRONGLY_TYPED"] if major >= 10 else ["EXPLICIT_BATCH"])
        if major < 11
        else ["STRONGLY_TYPED"]
    )
    trt.NetworkDefinitionCreationFlag = IntEnum("NetworkDefinitionCreationFlag", net_flags, start=0)  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)  # type: ignore[attr-defined]
    trt.DeviceType = types.SimpleNamespace(GPU=0, DLA=1)  # type: ignore[attr-defined]
    trt.float32 = "float32"  # type: ignore[attr-defined]
    trt.nptype = lambda dtype: np.float32 if dtype == "float32" else np.uint8  # type: ignore[attr-defined]
    if major < 11:

        class IInt8EntropyCalibrator2:  # noqa: N801 - TensorRT's name
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class Tensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: str) -> None:
            self.name, self.shape, self.dtype = name, shape, dtype

    class Layer:
        def __init__(self) -> None:
            self.type = types.SimpleNamespace(name="NORMALIZATION")
            self.num_outputs = 1

        def __setattr__(self, key: str, value: Any) -> None:
            if key == "precision":
                trt.calls["layer_precision"] += 1  # type: ignore[attr-defined]
            object.__setattr__(self, key, value)

    class Network:
        num_layers = 1

        def get_layer(self, i: int) -> Layer:
            return Layer()

        def get_input(self, i: int) -> Tensor:
            return Tensor("input", input_shape, "float32")

        def get_output(self, i: int) -> Tensor:
            return Tensor("labels", (1, *input_shape[2:]), "uint8")

    class TimingCache:
        def serialize(self) -> bytes:
            return b"timing"

    class Config:
        def __init__(self) -> None:
            self._cache: TimingCache | None = None

        def set_memory_pool_limit(self, pool: int, size: int) -> None:
            pass

        def add_optimization_profile(self, profile: Any) -> None:
            pass

        def set_flag(self, flag: Any) -> None:
            trt.calls["flags"].append(flag.name)  # type: ignore[attr-defined]

        def create_timing_cache(self, blob: bytes) -> TimingCache:
            return TimingCache()

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self._cache = cache if timing_cache_fits else None
            return timing_cache_fits

        def get_timing_cache(self) -> TimingCache | None:
            return self._cache

        def __setattr__(self, key: str, value: Any) -> None:
            if key == "DLA_core":
                trt.calls["dla_core"] = value  # type: ignore[attr-defined]
            if key == "int8_calibrator" and major >= 11:
                raise AttributeError("int8_calibrator was removed in TensorRT 11")
            object.__setattr__(self, key, value)

    class Profile:
        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            pass

    class Builder:
        def __init__(self, logger: Logger) -> None:
            self.num_DLA_cores = num_dla_cores

        def create_network(self, flags: int) -> Network:
            trt.calls["network_flags"] = flags  # type: ignore[attr-defined]
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes:
            return b"engine-bytes"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: Network, logger: Logger) -> None:
            pass

        def parse_from_file(self, path: str) -> bool:
            return True

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.num_DLA_cores = num_dla_cores
            self.DLA_core = -1

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime  # type: ignore[attr-defined]
    return trt


def install(monkeypatch: Any, trt: types.ModuleType, compute_capability: str = "8.7") -> None:
    """Put `trt` in sys.modules and fake the CUDA side (no cuda-python, no GPU)."""
    import sys

    from edgeseg.deploy.trt import cuda_helpers
    from edgeseg.deploy.trt.engine_meta import DeviceFacts

    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_helpers, "import_cudart", lambda: object())
    monkeypatch.setattr(
        cuda_helpers,
        "current_device_facts",
        lambda t, c: DeviceFacts(t.__version__, "Fake Orin", compute_capability),
    )
