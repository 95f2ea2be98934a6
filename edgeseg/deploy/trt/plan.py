"""How to build an engine with the TensorRT that is installed: 8.6, 10.x or 11.x (pure logic, no TensorRT import).

What changed between the releases, checked against NVIDIA/TensorRT's Python bindings
(`python/src/infer/pyCore.cpp`, `pyInt8.cpp`) and `include/NvInfer.h` on release/8.6, release/10.3, release/11.1:

- 8.6: ONNX networks need `NetworkDefinitionCreationFlag.EXPLICIT_BATCH`; precision by builder flags
  (`BuilderFlag.FP16` / `INT8`); INT8 from a calibrator (`IInt8EntropyCalibrator2`) or from Q/DQ nodes.
- 10.x: explicit batch is the only mode (the flag is deprecated); the same flags and calibrator
  (deprecated); `STRONGLY_TYPED` is optional.
- 11.x: `BuilderFlag.FP16/INT8`, `OBEY_PRECISION_CONSTRAINTS`, the calibrators and `int8_calibrator` are gone;
  every network is strongly typed (the STRONGLY_TYPED flag is kept but ignored), so the ONNX file's own types
  decide: FP16 needs an FP16 ONNX (`edgeseg export --fp16`), INT8 a Q/DQ ONNX for TensorRT
  (`edgeseg export --int8 --int8-for tensorrt`).

Features are read from the module (hasattr), not from the version string, so a release that drops an API
earlier or later than expected still gets the right plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, ExportError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TensorRTFeatures:
    """What the installed TensorRT's Python API offers that the build depends on."""

    version: str
    fp16_flag: bool  # BuilderFlag.FP16 / INT8 (gone in 11)
    calibrator: bool  # IInt8EntropyCalibrator2 and IBuilderConfig.int8_calibrator (gone in 11)
    explicit_batch_flag: bool  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH (8.x needs it, gone in 11)

    @classmethod
    def of(cls, trt: Any) -> TensorRTFeatures:
        return cls(
            version=str(trt.__version__),
            fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
            calibrator=hasattr(trt, "IInt8EntropyCalibrator2"),
            explicit_batch_flag=hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"),
        )

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@dataclass(frozen=True)
class BuildPlan:
    builder_flags: tuple[str, ...]  # trt.BuilderFlag names to set
    network_flags: tuple[str, ...]  # trt.NetworkDefinitionCreationFlag names
    calibrate: bool  # run the entropy calibrator on --calib images
    strongly_typed: bool  # types come from the ONNX file, not from builder flags

    def to_json(self) -> dict[str, Any]:
        return {
            "builder_flags": list(self.builder_flags),
            "network_flags": list(self.network_flags),
            "calibrated": self.calibrate,
            "strongly_typed": self.strongly_typed,
        }


def _export_hint(what: str) -> str:
    return {
        "fp16": "`edgeseg export CKPT --out model_fp16.onnx --fp16`",
        "int8": "`edgeseg export CKPT --out model_int8_trt.onnx --int8 --int8-for tensorrt --calib DIR`",
    }[what]


def build_plan(
    precision: str,
    onnx_precision: str,
    features: TensorRTFeatures,
    *,
    calib_dir: Path | None,
    qdq_problems: list[str],
    dla_core: int | None = None,
    onnx_name: str = "model.onnx",
) -> BuildPlan:
    """Flags for `precision` from a graph of `onnx_precision` on this TensorRT, or a one-line error that says
    what to run instead. `qdq_problems` are trt_support.qdq_problems of the graph (INT8 graphs only)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be fp32, fp16 or int8, got '{precision}'")
    if onnx_precision == "int8" and precision != "int8":
        raise ConfigError(
            f"'{onnx_name}' is an INT8 (Q/DQ) graph: build it with --int8 (its scales are used, no --calib)"
        )
    if onnx_precision == "fp16" and precision == "fp32":
        raise ConfigError(f"'{onnx_name}' has FP16 weights: build it with --fp16, or export an FP32 graph")
    if onnx_precision == "int8" and qdq_problems:
        raise ExportError(
            f"'{onnx_name}' is quantised for ONNX Runtime (asymmetric UINT8 / INT32 biases, e.g. "
            f"{qdq_problems[0]}), which TensorRT cannot build: export a TensorRT INT8 graph with "
            f"{_export_hint('int8')}"
        )
    if dla_core is not None and precision == "fp32":
        raise ConfigError("DLA cores run FP16 or INT8 only: build with --fp16 or --int8, or without --dla")
    calibrate = precision == "int8" and onnx_precision != "int8"
    v = features.version
    if calibrate and not features.calibrator:
        raise ConfigError(
            f"TensorRT {v} has no INT8 calibrator (removed in 11): export a TensorRT INT8 graph with "
            f"{_export_hint('int8')} and build that with --int8"
        )
    if calibrate and calib_dir is None:
        raise ConfigError(
            "--int8 on an FP32 graph needs --calib DIR (target-domain images) for calibration, or "
            f"a TensorRT INT8 graph from {_export_hint('int8')}"
        )
    fallback = ("GPU_FALLBACK",) if dla_core is not None else ()
    if not features.fp16_flag:  # TensorRT 11+: strongly typed, the ONNX types decide
        if precision == "fp16" and onnx_precision != "fp16":
            raise ConfigError(
                f"TensorRT {v} has no FP16 builder flag (networks are strongly typed): export an FP16 "
                f"graph with {_export_hint('fp16')} and build that with --fp16"
            )
        return BuildPlan(builder_flags=fallback, network_flags=(), calibrate=False, strongly_typed=True)
    flags: tuple[str, ...] = ()
    if precision in ("fp16", "int8"):
        flags += (
            "FP16",
        )  # INT8 builds allow FP16 too: layers without INT8 kernels then run in FP16, not FP32
    if precision == "int8":
        flags += ("INT8",)
    network = ("EXPLICIT_BATCH",) if features.explicit_batch_flag and features.major < 10 else ()
    return BuildPlan(
        builder_flags=flags + fallback, network_flags=network, calibrate=calibrate, strongly_typed=False
    )


def check_dla(dla_core: int | None, num_dla_cores: int) -> None:
    """Refuse a DLA core this device does not have (Orin Nano and desktop GPUs have none)."""
    if dla_core is None:
        return
    if num_dla_cores == 0:
        raise ConfigError(
            "this device has no DLA cores: build without --dla (or with a target whose dla_core is -1)"
        )
    if not 0 <= dla_core < num_dla_cores:
        raise ConfigError(
            f"this device has {num_dla_cores} DLA core(s), 0..{num_dla_cores - 1}; "
            f"--dla {dla_core} does not exist"
        )
