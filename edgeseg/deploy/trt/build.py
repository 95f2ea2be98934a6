"""`edgeseg build-engine`: ONNX -> TensorRT engine (+ sidecar JSON), with the TensorRT Python API (8.6 / 10.x / 11.x).

Build: network from the ONNX parser (explicit batch); one optimisation profile (min/opt/max shapes, fixed for
static graphs); precision as trt_plan.build_plan decides for the installed TensorRT: builder flags FP16/INT8
on 8.6 / 10.x (INT8 from an entropy calibrator fed from `--calib` images through the model's own
preprocessing, with a calibration cache, or from a TensorRT Q/DQ graph), a strongly typed network on 11.x
(FP16 from an FP16 ONNX, INT8 from a TensorRT Q/DQ ONNX); DLA with GPU fallback after checking the device has
the core; a timing cache that makes rebuilds fast. LayerNorm needs no pinning: the ONNX parser (8.6 and 10.x)
already sets the normalisation layer's compute precision to FP32 (the ONNX stash_type). Engine, sidecar and
caches are written atomically. TensorRT and cuda-python are imported inside `build_engine` only; everything
else here and in trt_plan is pure logic, unit-tested without a GPU (tests fake the tensorrt module).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import ConfigError, ExportError


@dataclass(frozen=True)
class ProfileShapes:
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max


def profile_shapes(
    input_shape: Sequence[int | str | None],
    nhwc: bool,
    batch: int = 1,
    size: tuple[int, int] | None = None,
    min_size: tuple[int, int] | None = None,
    max_size: tuple[int, int] | None = None,
) -> ProfileShapes:
    """min/opt/max input shapes of the optimisation profile. Dynamic dims are -1, None or names.

    Static H/W must match `size` if given; dynamic H/W need `size` (opt) and default min = max = opt.
    A dynamic batch becomes min 1, opt = max = `batch`.
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in input_shape]
    if len(dims) != 4:
        raise ConfigError(f"expected a 4-D image input, got shape {list(input_shape)}")
    hi, wi = (1, 2) if nhwc else (2, 3)
    h, w = dims[hi], dims[wi]
    if h is not None and w is not None:
        if size is not None and tuple(size) != (h, w):
            raise ConfigError(
                f"the ONNX graph has a fixed {h}x{w} input; --size {size[0]}x{size[1]} needs a "
                "graph exported with that size or --dynamic"
            )
        if min_size is not None or max_size is not None:
            raise ConfigError("--min-size/--max-size need a graph exported with --dynamic")
        opt_hw = lo_hw = hi_hw = (h, w)
    elif h is None and w is None:
        if size is None:
            raise ConfigError(
                "the ONNX graph has dynamic height/width: give --size HxW (the shape to "
                "optimise for), optionally --min-size / --max-size"
            )
        opt_hw, lo_hw, hi_hw = tuple(size), tuple(min_size or size), tuple(max_size or size)
        if not (lo_hw[0] <= opt_hw[0] <= hi_hw[0] and lo_hw[1] <= opt_hw[1] <= hi_hw[1]):
            raise ConfigError(
                f"need min-size <= size <= max-size per dimension, got {lo_hw} / {opt_hw} / {hi_hw}"
            )
    else:
        raise ConfigError(
            f"input shape {list(input_shape)}: height and width must be both fixed or both dynamic"
        )
    if batch < 1:
        raise ConfigError("batch must be >= 1")
    if dims[0] is not None and dims[0] != batch and batch != 1:
        raise ConfigError(f"the ONNX graph has a fixed batch of {dims[0]}; export with --batch {batch}")
    b_opt = dims[0] if dims[0] is not None else batch
    b_min = dims[0] if dims[0] is not None else 1

    def shape(b: int, hw: tuple[int, ...]) -> tuple[int, ...]:
        out = list(dims)
        out[0], out[hi], out[wi] = b, hw[0], hw[1]
        if None in out:
            raise ConfigError(f"input shape {list(input_shape)} has a dynamic dimension other than batch/H/W")
        return tuple(int(d) for d in out)  # type: ignore[arg-type]

    return ProfileShapes(min=shape(b_min, lo_hw), opt=shape(b_opt, opt_hw), max=shape(b_opt, hi_hw))


@dataclass(frozen=True)
class EngineConfig:
    precision: str = "fp16"
    calib_dir: Path | None = None
    calib_images: int = 256
    calib_cache: Path | None = None
    workspace_mb: int = 1024
    dla_core: int | None = None
    timing_cache: Path | None = None
    size: tuple[int, int] | None = None
    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    batch: int = 1


@dataclass
class EngineReport:
    engine: str
    sidecar: str
    precision: str
    tensorrt_version: str
    device_name: str
    compute_capability: str
    profile: dict[str, list[int]]
    plan: dict[str, Any]
    dla_core: int | None
    build_seconds: float
    engine_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _make_calibrator(trt: Any, cudart: Any, batches: Any, nbytes: int, batch_size: int, cache: Path) -> Any:
    """An IInt8EntropyCalibrator2 pulling preprocessed batches; the cache file skips recalibration."""
    from edgeseg.deploy.trt.cuda_helpers import cuda_call
    from edgeseg.io_utils import write_bytes_atomic

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._device = cuda_call(cudart.cudaMalloc(nbytes))

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch)
            cuda_call(
                cudart.cudaMemcpy(
                    self._device,
                    batch.ctypes.data,
                    batch.nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                )
            )
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data: Any) -> None:
            write_bytes_atomic(cache, bytes(data))

        def free(self) -> None:
            cuda_call(cudart.cudaFree(self._device))

    return EntropyCalibrator()


def build_engine(
    onnx_path: str | Path, out: str | Path, cfg: EngineConfig, log: Callable[[str], None] = lambda _m: None
) -> EngineReport:
    """Build and write `out` + `out.json`. Raises ExportError / ConfigError with one-line messages."""
    from edgeseg import __version__
    from edgeseg.deploy.runtime import onnx_meta
    from edgeseg.deploy.trt import cuda_helpers
    from edgeseg.deploy.trt.engine_meta import make_sidecar, sidecar_path
    from edgeseg.deploy.trt.plan import TensorRTFeatures, build_plan, check_dla
    from edgeseg.deploy.trt.support import custom_domains, qdq_problems
    from edgeseg.io_utils import atomic_path, sha256_file, write_bytes_atomic, write_json_atomic

    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise ConfigError(f"ONNX file '{onnx_path}' does not exist")
    meta = onnx_meta.read_onnx_file_meta(str(onnx_path))
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False)
    domains = custom_domains(graph)
    if domains:
        raise ExportError(
            f"'{onnx_path.name}' uses non-standard ops ({', '.join(domains)}) that TensorRT's parser "
            "does not know; export a plain graph with `edgeseg export`"
        )
    onnx_precision = meta.get("precision", "fp32")
    qdq = qdq_problems(graph) if onnx_precision == "int8" else []
    del graph
    try:
        import tensorrt as trt
    except ImportError:
        raise ExportError(
            "TensorRT is not installed here: build engines on the device (JetPack ships it) or "
            "pip install tensorrt on an NVIDIA GPU machine"
        ) from None
    features = TensorRTFeatures.of(trt)
    plan = build_plan(
        cfg.precision,
        onnx_precision,
        features,
        calib_dir=cfg.calib_dir,
        qdq_problems=qdq,
        dla_core=cfg.dla_core,
        onnx_name=onnx_path.name,
    )
    cudart = cuda_helpers.import_cudart()
    facts = cuda_helpers.current_device_facts(trt, cudart)
    log(
        f"TensorRT {trt.__version__} on {facts.device_name} (sm_{facts.compute_capability.replace('.', '')})"
        f"{', strongly typed' if plan.strongly_typed else ''}"
    )
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    check_dla(cfg.dla_core, int(builder.num_DLA_cores))
    network_flags = 0
    for name in plan.network_flags:
        network_flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse '{onnx_path.name}': {errors[:400]}")
    inp = network.get_input(0)
    nhwc = bool(meta.get("preprocess"))
    shapes = profile_shapes(list(inp.shape), nhwc, cfg.batch, cfg.size, cfg.min_size, cfg.max_size)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(profile)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if cfg.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = cfg.dla_core
    timing_cache = None
    if cfg.timing_cache is not None:
        blob = cfg.timing_cache.read_bytes() if cfg.timing_cache.exists() else b""
        timing_cache = config.create_timing_cache(blob)
        if timing_cache is None or not config.set_timing_cache(timing_cache, ignore_mismatch=False):
            raise ExportError(
                f"timing cache '{cfg.timing_cache}' does not fit this GPU or TensorRT {trt.__version__} "
                "(made elsewhere?): delete it or give another --timing-cache"
            )
    calibrator = None
    if plan.calibrate:
        calibrator = _attach_calibrator(trt, cudart, config, profile, shapes, nhwc, meta, cfg, out, log)
    log("building the engine (minutes on a Jetson)")
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise ExportError(
            "TensorRT failed to build the engine (see its messages above); try a larger --workspace "
            "or another precision"
        )
    with atomic_path(out) as tmp:
        tmp.write_bytes(bytes(serialized))
    if timing_cache is not None:
        updated = config.get_timing_cache()
        if updated is not None:
            write_bytes_atomic(cfg.timing_cache, bytes(updated.serialize()))  # type: ignore[arg-type]
    output = network.get_output(0)
    sidecar = make_sidecar(
        facts,
        precision=cfg.precision,
        inputs={
            inp.name: {
                "dtype": str(np.dtype(trt.nptype(inp.dtype))),
                "min": list(shapes.min),
                "opt": list(shapes.opt),
                "max": list(shapes.max),
            }
        },
        outputs={
            output.name: {"dtype": str(np.dtype(trt.nptype(output.dtype))), "shape": list(output.shape)}
        },
        model_meta={**meta, "input_size": None if not shapes.static else meta.get("input_size")},
        onnx_path=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path),
        dla_core=cfg.dla_core,
        edgeseg_version=__version__,
        build={
            "workspace_mb": cfg.workspace_mb,
            **plan.to_json(),
            "timing_cache": str(cfg.timing_cache) if cfg.timing_cache else None,
        },
    )
    write_json_atomic(sidecar_path(out), sidecar)
    return EngineReport(
        engine=str(out),
        sidecar=str(sidecar_path(out)),
        precision=cfg.precision,
        tensorrt_version=facts.tensorrt_version,
        device_name=facts.device_name,
        compute_capability=facts.compute_capability,
        profile={"min": list(shapes.min), "opt": list(shapes.opt), "max": list(shapes.max)},
        plan=plan.to_json(),
        dla_core=cfg.dla_core,
        build_seconds=round(time.perf_counter() - start, 1),
        engine_bytes=out.stat().st_size,
    )


def _attach_calibrator(
    trt: Any,
    cudart: Any,
    config: Any,
    profile: Any,
    shapes: ProfileShapes,
    nhwc: bool,
    meta: dict[str, Any],
    cfg: EngineConfig,
    out: Path,
    log: Callable[[str], None],
) -> Any:
    """TensorRT 8.6 / 10.x implicit INT8: an entropy calibrator over --calib images (cache next to the engine)."""
    from edgeseg.deploy.runtime.calibration import CalibrationBatcher, list_images
    from edgeseg.deploy.runtime.preprocess import normalize_batch, uint8_batch

    files = list_images(cfg.calib_dir, cfg.calib_images)  # type: ignore[arg-type]
    hw = shapes.opt[1:3] if nhwc else shapes.opt[2:4]
    size = (int(hw[0]), int(hw[1]))
    prepare = (
        (lambda f: uint8_batch(f, size))
        if nhwc
        else (lambda f: normalize_batch(f, size, meta["mean"], meta["std"]))
    )
    batcher = CalibrationBatcher(files, shapes.opt[0], prepare)
    itemsize = 1 if nhwc else 4
    cache = cfg.calib_cache or out.with_name(out.name + ".calib")
    calibrator = _make_calibrator(
        trt, cudart, batcher, int(np.prod(shapes.opt)) * itemsize, shapes.opt[0], cache
    )
    config.int8_calibrator = calibrator
    if not shapes.static:
        config.set_calibration_profile(profile)
    log(
        f"INT8 calibration on {len(batcher) * batcher.batch_size} images from {cfg.calib_dir} (cache {cache.name})"
    )
    return calibrator
