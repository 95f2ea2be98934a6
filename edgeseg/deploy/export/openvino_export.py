"""`edgeseg export --for openvino`: the OpenVINO half of the export, after the ONNX graph is built.

    .onnx out: the OpenVINO-shaped ONNX graph (fp32, or bf16 = fp32 weights run with OpenVINO's bf16
               inference precision, recorded in the metadata)
    .xml out:  OpenVINO IR (.xml + .bin beside it), fp32 / bf16 as above, or INT8: NNCF post-training
               quantisation calibrated on --calib images (the layers left float run in bf16 where the CPU
               has it)

Every file is checked through OpenVINO itself, at the precision it will run with, against the PyTorch
model (label agreement; the export fails below the threshold) and, for INT8, against the FP32 graph
(speed, agreement, mIoU of INT8 labels against FP32 labels). Written atomically: the .bin first, then
the .xml that points at it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeseg.deploy.export.parity import Runner, agreement_and_miou
from edgeseg.deploy.runtime import onnx_meta
from edgeseg.deploy.runtime.openvino_backend import compile_config, cpu_has_bf16
from edgeseg.errors import ExportError

IR_SUFFIX = ".xml"


def _openvino() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("--for openvino needs openvino: pip install 'edgeseg[openvino]'") from None
    return ov


def to_openvino(graph: onnx.ModelProto) -> Any:
    """ONNX graph -> openvino.Model (through a temporary file: OpenVINO's ONNX frontend reads paths)."""
    ov = _openvino()
    with tempfile.TemporaryDirectory(prefix="edgeseg-ov-") as tmp:
        path = Path(tmp, "model.onnx")
        onnx.save(graph, str(path))
        try:
            return ov.Core().read_model(str(path))
        except Exception as exc:
            raise ExportError(f"OpenVINO rejects the exported graph: {onnx_meta.one_line(exc)}") from None


def set_meta(model: Any, meta: dict[str, Any]) -> None:
    """The edgeseg metadata as rt_info ("edgeseg" section, JSON values as in ONNX metadata_props)."""
    for key, value in onnx_meta.encode(meta).items():
        model.set_rt_info(value, ["edgeseg", key])


def runner(model: Any, precision: str, batch_size: int | None, threads: int | None = None) -> Runner:
    """A compiled OpenVINO CPU model as a parity Runner, at the inference precision `precision` implies."""
    ov = _openvino()
    core = ov.Core()
    compiled = core.compile_model(model, "CPU", compile_config(precision, threads, cpu_has_bf16(core)))
    request = compiled.create_infer_request()

    def run(batch: np.ndarray) -> np.ndarray:
        step = batch_size or len(batch)
        return np.concatenate(
            [
                np.array(request.infer({0: np.ascontiguousarray(batch[i : i + step])})[compiled.output(0)])
                for i in range(0, len(batch), step)
            ]
        )

    return run


def quantize_int8(model: Any, batches: Iterable[np.ndarray], subset_size: int) -> Any:
    """NNCF post-training quantisation (transformer preset: SmoothQuant, attention MatMuls quantised,
    LayerNorm / Softmax / GELU float) calibrated on model-ready batches."""
    try:
        import nncf
    except ImportError:
        raise ExportError("INT8 for OpenVINO needs nncf: pip install 'edgeseg[openvino]'") from None
    data = list(batches)
    if not data:
        raise ExportError("no calibration batches; give --calib DIR with at least one image")
    logging.getLogger("nncf").setLevel(logging.WARNING)
    return nncf.quantize(
        model,
        nncf.Dataset(data),
        subset_size=min(subset_size, len(data)),
        model_type=nncf.ModelType.TRANSFORMER,
    )


def save_ir(model: Any, out: Path) -> None:
    """IR to `out` (.xml) and its .bin, atomically: .bin renamed first, .xml last."""
    from edgeseg.io_utils import atomic_path

    ov = _openvino()
    with tempfile.TemporaryDirectory(prefix="edgeseg-ov-", dir=out.parent) as tmp:
        staged = Path(tmp, "model.xml")
        ov.save_model(model, str(staged), compress_to_fp16=False)  # weights stay as exported
        with ExitStack() as stack:
            xml_tmp = stack.enter_context(atomic_path(out))
            bin_tmp = stack.enter_context(atomic_path(out.with_suffix(".bin")))  # inner: committed first
            staged.with_suffix(".bin").replace(bin_tmp)
            staged.replace(xml_tmp)


def compare_int8_openvino(
    fp32: Any,
    int8: Any,
    feeds: list[np.ndarray],
    batch: int | None,
    output: str,
    num_classes: int,
    to_labels: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    repeats: int = 3,
) -> dict[str, Any]:
    """INT8 against FP32 in OpenVINO, each at the inference precision it runs with: speed (best of
    `repeats`), label agreement and mIoU of INT8 labels scored against FP32 labels."""
    runs = {"fp32": runner(fp32, "fp32", batch), "int8": runner(int8, "int8", batch)}
    times = {"fp32": 0.0, "int8": 0.0}
    labels: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
    for feed in feeds:
        size = (feed.shape[1], feed.shape[2]) if feed.shape[-1] == 3 else (feed.shape[2], feed.shape[3])
        for name, run in runs.items():
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = run(feed)
                best = min(best, time.perf_counter() - t0)
            times[name] += best / len(feed)
            labels[name].append(out if output == "labels" else to_labels(out, size))
    return {
        "fp32_ms": 1000 * times["fp32"] / len(feeds),
        "int8_ms": 1000 * times["int8"] / len(feeds),
        "runtime": "openvino",
        **agreement_and_miou(labels["fp32"], labels["int8"], num_classes),
        "note": "OpenVINO CPU, each at its own inference precision (openvino_backend.INFERENCE_PRECISION); mIoU of INT8 labels scored against FP32 "  # noqa: E501
        "labels (FP32 = 100); true mIoU needs labelled data (benchmarks/export.py)",
    }


def export_checked(
    model: Any,
    final: onnx.ModelProto,
    scores: onnx.ModelProto,
    cfg: Any,
    out: Path,
    meta: dict[str, Any],
    frame_sets: list[list[np.ndarray]],
    source: str,
    log: Callable[[str], None],
) -> tuple[Any, dict[str, Any] | None]:
    """Convert, quantise (INT8), check through OpenVINO and write `out` (.onnx or IR .xml); nothing is
    written when a check fails. `cfg` is the ExportConfig; returns (ParityResult, INT8 report or None)."""
    from edgeseg.deploy.export.onnx_export import _prepare_fn
    from edgeseg.deploy.export.parity import check_parity, scores_to_label_tensor
    from edgeseg.deploy.runtime.calibration import CalibrationBatcher, list_images
    from edgeseg.io_utils import atomic_path

    batch = None if cfg.dynamic else cfg.batch
    fp32_model = to_openvino(final)
    set_meta(fp32_model, {**meta, "precision": "fp32"})
    ov_model = fp32_model
    probe: Runner | None = None
    if cfg.output == "labels" and cfg.precision != "int8":  # scores through the same runtime and precision
        probe = runner(to_openvino(scores), cfg.precision, batch)
    if cfg.precision == "int8":
        files = list_images(cfg.calib_dir, cfg.calib_images)
        log(f"INT8 for OpenVINO (NNCF): calibration on {len(files)} images from {cfg.calib_dir}")
        batcher = CalibrationBatcher(files, cfg.batch, _prepare_fn(meta, cfg.size, cfg.preprocess))
        ov_model = quantize_int8(fp32_model.clone(), iter(batcher), len(files))
        set_meta(ov_model, meta)
    elif cfg.precision == "bf16":
        set_meta(ov_model, meta)
        if not cpu_has_bf16(_openvino().Core()):
            raise ExportError(
                "--bf16 needs a CPU with bf16 (AVX512-BF16 / AMX) to check the export on; export "
                "it on such a machine, or export fp32"
            )
    log(f"checking parity with PyTorch through OpenVINO ({cfg.precision})")
    parity = check_parity(
        model,
        runner(ov_model, cfg.precision, batch),
        probe,
        frame_sets,
        output=cfg.output,
        preprocess=cfg.preprocess,
        batch_size=batch,
        threshold=cfg.threshold,
        source=source,
    )
    log(parity.summary())
    int8_info = None
    if cfg.precision == "int8":
        prepare = _prepare_fn(meta, cfg.size, cfg.preprocess)
        int8_info = compare_int8_openvino(
            fp32_model,
            ov_model,
            [prepare(f) for f in frame_sets[:1]],
            batch,
            cfg.output,
            meta["num_classes"],
            scores_to_label_tensor,
        )
        log(
            f"INT8 vs FP32 (OpenVINO CPU): {int8_info['fp32_ms']:.1f} -> {int8_info['int8_ms']:.1f} ms, "
            f"label agreement {100 * int8_info['agreement_vs_fp32']:.2f}%, "
            f"mIoU of INT8 labels against FP32 labels {100 * int8_info['miou_vs_fp32']:.2f}"
        )
    if not parity.passed:
        raise ExportError(
            f"parity check failed (OpenVINO, {cfg.precision}): label agreement "
            f"{100 * parity.agreement:.3f}% < {100 * parity.threshold:.2f}% ({parity.images} {source} "
            "images); nothing written. Lower the bar with --min-agreement only if this precision "
            "loss is acceptable"
        )
    if out.suffix.lower() == IR_SUFFIX:
        save_ir(ov_model, out)
    else:
        with atomic_path(out) as tmp:
            onnx.save(final, str(tmp))
    return parity, int8_info
