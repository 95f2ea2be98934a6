"""`edgeseg export`: checkpoint -> ONNX (opset 17), cleaned, optionally FP16 / INT8, parity-checked.

    report = export_onnx("student.safetensors", "model.onnx", ExportConfig(size=(512, 1024)))

Pipeline: ExportSegmentor (an inference-ordered twin of the model, see export_model.py) -> torch.onnx
(static shapes unless dynamic) -> onnxslim -> FP16 conversion or INT8 QDQ quantisation -> labels head
appended as ONNX nodes -> metadata -> parity check against the PyTorch model -> atomic write. Nothing is
written when any step or the parity check fails.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeseg.deploy.export import graph_edit
from edgeseg.deploy.runtime.calibration import CalibrationBatcher, list_images, load_frames
from edgeseg.deploy.runtime.onnx_meta import FORMAT, FORMAT_VERSION, OUTPUT_KINDS, PRECISIONS, SHAPED_FOR
from edgeseg.deploy.runtime.preprocess import resize_frame
from edgeseg.errors import ConfigError, ExportError

# Label agreement with PyTorch below which an export fails, per precision (override: min_agreement).
DEFAULT_MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.995, "bf16": 0.995, "int8": 0.95}


@dataclass(frozen=True)
class ExportConfig:
    size: tuple[int, int] = (512, 1024)
    dynamic: bool = False  # dynamic batch, height and width
    output: str = "labels"
    preprocess: bool = False
    precision: str = "fp32"
    calib_dir: Path | None = None
    calib_images: int = 32
    calib_method: str = "minmax"
    int8_for: str = "onnxruntime"  # INT8 flavour: onnxruntime (uint8 activations) | tensorrt (symmetric int8)
    shaped_for: str = "onnxruntime"  # the runtime the graph is laid out for: onnxruntime | openvino
    opset: int = 17
    batch: int = 1
    min_agreement: float | None = None
    parity_images: int = 4
    slim: bool = True

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_KINDS:
            raise ConfigError(f"--output must be one of {', '.join(OUTPUT_KINDS)}, not '{self.output}'")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}")
        from edgeseg.deploy.export.quantize import FLAVOURS

        if self.int8_for not in FLAVOURS:
            raise ConfigError(f"--int8-for must be one of {', '.join(FLAVOURS)}, not '{self.int8_for}'")
        if self.shaped_for not in SHAPED_FOR:
            raise ConfigError(f"--for must be one of {', '.join(SHAPED_FOR)}, not '{self.shaped_for}'")
        openvino = self.shaped_for == "openvino"
        if self.precision == "bf16" and not openvino:
            raise ConfigError("--bf16 is an OpenVINO inference precision: add --for openvino")
        if openvino and self.precision == "fp16":
            raise ConfigError(
                "--fp16 is for GPUs (ONNX Runtime CUDA / TensorRT); for OpenVINO on the CPU use --bf16"
            )
        if self.precision == "int8" and self.calib_dir is None:
            raise ConfigError(
                "--int8 needs --calib DIR: target-domain images to calibrate the int8 ranges on"
            )
        if self.opset < 17:
            raise ConfigError("opset must be >= 17 (LayerNormalization is a real op from 17 on)")
        if self.batch < 1 or self.parity_images < 1:
            raise ConfigError("batch and parity image count must be >= 1")
        if min(self.size) < 32:
            raise ConfigError(f"input size {self.size} is too small: at least 32x32 (the encoder strides 32)")

    def check_out(self, out: Path) -> None:
        """The output file type fits: .onnx, or OpenVINO IR .xml for --for openvino (needed for its INT8)."""
        suffix = out.suffix.lower()
        if self.shaped_for != "openvino":
            if suffix == ".xml":
                raise ConfigError("OpenVINO IR (.xml) output needs --for openvino")
            return
        if suffix not in (".onnx", ".xml"):
            raise ConfigError(f"--for openvino writes .onnx or OpenVINO IR .xml, not '{out.name}'")
        if self.precision == "int8" and suffix != ".xml":
            raise ConfigError("INT8 for OpenVINO (NNCF) is written as OpenVINO IR: give --out model.xml")

    @property
    def threshold(self) -> float:
        return self.min_agreement if self.min_agreement is not None else DEFAULT_MIN_AGREEMENT[self.precision]


@dataclass
class ExportReport:
    out: str
    precision: str
    output: str
    input_shape: list[Any]
    input_dtype: str
    opset: int
    slimmed: bool
    nodes: dict[str, int]
    parity: dict[str, Any]
    file_bytes: int
    seconds: float
    int8: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _torch_export(
    module: Any, example: Any, opset: int, output: str, dynamic: bool, nhwc: bool
) -> onnx.ModelProto:
    import torch

    dynamic_axes = None
    if dynamic:
        dynamic_axes = {
            "input": {0: "batch", 1: "height", 2: "width"} if nhwc else {0: "batch", 2: "height", 3: "width"},
            output: {0: "batch", 2: "height_4", 3: "width_4"},
        }
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape arithmetic; parity is the real check
        try:
            # the TorchScript exporter: deterministic, no onnxscript dependency; opset-17 LayerNormalization
            torch.onnx.export(
                module,
                (example,),
                buf,
                opset_version=opset,
                input_names=["input"],
                output_names=[output],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:
            raise ExportError(f"torch.onnx export failed: {str(exc).splitlines()[0][:300]}") from None
    model = onnx.load_from_string(buf.getvalue())
    model.ir_version = min(model.ir_version, graph_edit.MAX_IR_VERSION)
    return model


def _onnx_meta(model: Any, ckpt: Path, cfg: ExportConfig, precision: str) -> dict[str, Any]:
    from edgeseg import __version__
    from edgeseg.checkpoint import model_meta
    from edgeseg.io_utils import sha256_file

    meta = model_meta(model)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgeseg_version": __version__,
        "arch": meta["arch"],
        "num_classes": meta["num_classes"],
        "classes": meta["classes"],
        "palette": meta["palette"],
        "mean": meta["mean"],
        "std": meta["std"],
        "input_size": None if cfg.dynamic else list(cfg.size),
        "batch": None if cfg.dynamic else cfg.batch,
        "output": cfg.output,
        "preprocess": cfg.preprocess,
        "precision": precision,
        "opset": cfg.opset,
        "shaped_for": cfg.shaped_for,
        "source_checkpoint": ckpt.name,
        "source_sha256": sha256_file(ckpt),
        "provenance": meta.get("provenance", {}),
    }


def _prepare_fn(
    meta: dict[str, Any], size: tuple[int, int], preprocess: bool
) -> Callable[[list[np.ndarray]], np.ndarray]:
    from edgeseg.deploy.runtime.preprocess import normalize_batch, uint8_batch

    if preprocess:
        return lambda frames: uint8_batch(frames, size)
    return lambda frames: normalize_batch(frames, size, meta["mean"], meta["std"])


def _finish(scores: onnx.ModelProto, cfg: ExportConfig, meta: dict[str, Any]) -> onnx.ModelProto:
    """Append the labels head (labels output) and the metadata to a score graph (a copy)."""
    final = onnx.ModelProto()
    final.CopyFrom(scores)
    if cfg.output == "labels":
        graph_edit.append_labels_head(
            final,
            "logits",
            meta["num_classes"],
            nhwc_input=cfg.preprocess,
            static_size=None if cfg.dynamic else cfg.size,
            batch=None if cfg.dynamic else cfg.batch,
            channels_last=cfg.shaped_for == "onnxruntime",
        )
    graph_edit.set_metadata(final, meta)
    return final


def _parity_frame_sets(cfg: ExportConfig) -> list[list[np.ndarray]]:
    sizes = [cfg.size]
    if cfg.dynamic:  # prove the dynamic graph at a second, smaller size too
        sizes.append((max(32, cfg.size[0] * 3 // 4), max(32, cfg.size[1] * 3 // 4)))
    return [
        [resize_frame(f, (h, w)) for f in load_frames(cfg.calib_dir, cfg.parity_images, (h, w), seed=7)]
        for h, w in sizes
    ]


def export_onnx(
    ckpt: str | Path, out: str | Path, cfg: ExportConfig, log: Callable[[str], None] = lambda _msg: None
) -> ExportReport:
    """Export, check and write `out` atomically; raises ExportError (nothing written) on any failure.
    `cfg.shaped_for == "openvino"`: the OpenVINO graph, checked through OpenVINO (openvino_export.py)."""
    import torch

    from edgeseg.checkpoint import load_model
    from edgeseg.deploy.export.export_model import ExportSegmentor, OpenVINOSegmentor

    start = time.perf_counter()
    ckpt, out = Path(ckpt), Path(out)
    cfg.check_out(out)
    model = load_model(ckpt)
    meta = _onnx_meta(model, ckpt, cfg, cfg.precision)
    h, w = cfg.size
    log(
        f"exporting {model.arch} ({model.num_classes} classes) at {h}x{w}{' (dynamic)' if cfg.dynamic else ''}, "
        f"output {cfg.output}, {cfg.precision}"
    )
    shaped = OpenVINOSegmentor if cfg.shaped_for == "openvino" else ExportSegmentor
    twin = shaped(model, output="probs" if cfg.output == "probs" else "logits", preprocess=cfg.preprocess)
    example = (
        torch.zeros((cfg.batch, h, w, 3), dtype=torch.uint8)
        if cfg.preprocess
        else torch.zeros((cfg.batch, 3, h, w))
    )
    score_name = "probs" if cfg.output == "probs" else "logits"
    raw = _torch_export(twin, example, cfg.opset, score_name, cfg.dynamic, cfg.preprocess)
    nodes = {"exported": graph_edit.count_ops(raw)}
    scores, slimmed = graph_edit.slim(raw) if cfg.slim else (raw, False)
    nodes["slimmed"] = graph_edit.count_ops(scores)
    notes = (
        []
        if slimmed or not cfg.slim
        else ["onnxslim not installed: graph not cleaned (pip install onnxslim)"]
    )
    fp32_scores = scores
    if cfg.precision == "fp16":
        log("converting to FP16 (LayerNorm / Softmax / reductions stay FP32)")
        scores = graph_edit.to_fp16(scores)
    elif cfg.precision == "int8" and cfg.shaped_for == "onnxruntime":
        from edgeseg.deploy.export.quantize import quantize_int8

        files = list_images(cfg.calib_dir, cfg.calib_images)
        log(
            f"INT8 for {cfg.int8_for}: calibration on {len(files)} images from {cfg.calib_dir} ({cfg.calib_method})"
        )
        batcher = CalibrationBatcher(files, cfg.batch, _prepare_fn(meta, cfg.size, cfg.preprocess))
        scores = onnx.load_from_string(
            quantize_int8(
                scores.SerializeToString(),
                iter(batcher),
                "input",
                method=cfg.calib_method,
                flavour=cfg.int8_for,
            )
        )
        scores.ir_version = min(scores.ir_version, graph_edit.MAX_IR_VERSION)
    final = _finish(scores, cfg, meta)
    nodes["final"] = graph_edit.count_ops(final)
    frame_sets = _parity_frame_sets(cfg)
    source = str(cfg.calib_dir) if cfg.calib_dir else "synthetic"
    if cfg.shaped_for == "openvino":
        from edgeseg.deploy.export.openvino_export import export_checked

        parity, int8_info = export_checked(model, final, scores, cfg, out, meta, frame_sets, source, log)
    else:
        parity, int8_info = _write_checked_onnx(
            model, final, scores, fp32_scores, cfg, out, ckpt, frame_sets, source, log
        )
    input_info = final.graph.input[0].type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in input_info.shape.dim]
    return ExportReport(
        out=str(out),
        precision=cfg.precision,
        output=cfg.output,
        input_shape=shape,
        input_dtype="uint8" if cfg.preprocess else "float32",
        opset=cfg.opset,
        slimmed=slimmed,
        nodes=nodes,
        parity=parity.to_json(),
        file_bytes=sum(f.stat().st_size for f in _written(out)),
        seconds=round(time.perf_counter() - start, 2),
        int8=int8_info,
        notes=notes,
    )


def _written(out: Path) -> list[Path]:
    """The files an export wrote: the .onnx, or an OpenVINO IR's .xml and .bin."""
    return [out, out.with_suffix(".bin")] if out.suffix.lower() == ".xml" else [out]


def _write_checked_onnx(
    model: Any,
    final: onnx.ModelProto,
    scores: onnx.ModelProto,
    fp32_scores: onnx.ModelProto,
    cfg: ExportConfig,
    out: Path,
    ckpt: Path,
    frame_sets: list[list[np.ndarray]],
    source: str,
    log: Callable[[str], None],
) -> tuple[Any, dict[str, Any] | None]:
    """Write `final` to `out` atomically if it passes the parity check in ONNX Runtime (CPU)."""
    from edgeseg.deploy.export.parity import check_parity
    from edgeseg.io_utils import atomic_path

    int8_info = None
    probe = scores.SerializeToString() if cfg.output == "labels" else None
    with atomic_path(out) as tmp:
        onnx.save(final, str(tmp))
        log("checking parity with PyTorch")
        parity = check_parity(
            model,
            str(tmp),
            probe,
            frame_sets,
            output=cfg.output,
            preprocess=cfg.preprocess,
            batch_size=None if cfg.dynamic else cfg.batch,
            threshold=cfg.threshold,
            source=source,
        )
        log(parity.summary())
        if cfg.precision == "int8":
            fp32_final = _finish(fp32_scores, cfg, _onnx_meta(model, ckpt, cfg, "fp32"))
            int8_info = compare_int8(
                fp32_final.SerializeToString(),
                str(tmp),
                frame_sets,
                None if cfg.dynamic else cfg.batch,
                cfg.output,
                model.num_classes,
            )
            log(
                f"INT8 vs FP32 (ONNX Runtime CPU): {int8_info['fp32_ms']:.1f} -> {int8_info['int8_ms']:.1f} ms, "
                f"label agreement {100 * int8_info['agreement_vs_fp32']:.2f}%, "
                f"mIoU of INT8 labels against FP32 labels {100 * int8_info['miou_vs_fp32']:.2f}"
            )
        if not parity.passed:
            raise ExportError(
                f"parity check failed: label agreement {100 * parity.agreement:.3f}% < "
                f"{100 * parity.threshold:.2f}% ({parity.images} {source} images); nothing written. "
                "Lower the bar with --min-agreement only if this precision loss is acceptable"
            )
    return parity, int8_info


def compare_int8(
    fp32: bytes,
    int8: str,
    frame_sets: list[list[np.ndarray]],
    batch: int | None,
    output: str,
    num_classes: int,
    repeats: int = 3,
) -> dict[str, Any]:
    """Speed (ONNX Runtime CPU, best of `repeats`) and label agreement / mIoU of INT8 against FP32."""
    from edgeseg.deploy.export.parity import _session, agreement_and_miou, run_graph, scores_to_label_tensor
    from edgeseg.deploy.runtime.onnxruntime_backend import OnnxRuntimeSegmenter

    sessions = {"fp32": _session(fp32), "int8": _session(int8)}
    times: dict[str, float] = {}
    labels: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
    with OnnxRuntimeSegmenter(int8) as seg:  # its preprocessing, so both see exactly what a deployment feeds
        for frames in frame_sets:
            size = tuple(frames[0].shape[:2])
            feed = seg.preprocess(frames)
            for name, sess in sessions.items():
                best = float("inf")
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    out = run_graph(sess, feed, batch)
                    best = min(best, time.perf_counter() - t0)
                times[name] = times.get(name, 0.0) + best / len(frames)
                labels[name].append(out if output == "labels" else scores_to_label_tensor(out, size))
    return {
        "fp32_ms": 1000 * times["fp32"] / len(frame_sets),
        "int8_ms": 1000 * times["int8"] / len(frame_sets),
        **agreement_and_miou(labels["fp32"], labels["int8"], num_classes),
        "note": "mIoU of INT8 labels scored against FP32 labels (FP32 = 100); true mIoU needs labelled data "
        "(benchmarks/export.py)",
    }
