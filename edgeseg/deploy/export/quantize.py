"""INT8: static QDQ quantisation calibrated on target-domain images, in two flavours.

- "onnxruntime" (ONNX Runtime CPU): weights int8 per output channel, activations uint8 with zero points
  (the U8S8 layout ONNX Runtime's x86 kernels run fastest: VNNI / AMX where present), biases int32.
- "tensorrt": what TensorRT's explicit quantisation accepts (see trt_support.qdq_problems): symmetric int8
  activations and weights (zero points 0), biases left float (TensorRT fuses them itself). TensorRT reads the
  scales from these Q/DQ nodes; no calibrator runs on the device.

Only Conv / MatMul / Gemm are quantised; LayerNorm, Softmax, GELU, Resize and ArgMax stay float, since they
are cheap and are where int8 error would hurt accuracy most. Torch-free (onnx + onnxruntime.quantization).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgeseg.errors import ExportError

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
FLAVOURS = ("onnxruntime", "tensorrt")


def activation_matmuls(model: bytes) -> list[str]:
    """Names of MatMul nodes whose inputs are both activations (attention scores q@k and p@v).

    They stay float: quantising them makes ONNX Runtime wrap the Softmax between them into
    QLinearSoftmax, which is slower than the float path and the least accurate spot of the model.
    """
    import onnx

    graph = onnx.load_from_string(model).graph
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not any(i in constants for i in n.input)]


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def depthwise_convs(model: bytes) -> list[str]:
    """Depth-wise Conv nodes (group == channels): memory-bound, int8 saves nothing there but adds
    quantise/dequantise passes around them."""
    import onnx

    graph = onnx.load_from_string(model).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    names = []
    for n in graph.node:
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if n.op_type == "Conv" and group > 1 and shapes.get(n.input[1], (0, 0))[1:2] == (1,):
            names.append(n.name)
    return names


def quantize_int8(
    fp32_model: bytes,
    batches: Iterable[np.ndarray],
    input_name: str,
    method: str = "percentile",
    op_types: tuple[str, ...] = QUANTIZED_OPS,
    exclude_depthwise: bool = True,
    exclude_nodes: tuple[str, ...] = (),
    flavour: str = "onnxruntime",
) -> bytes:
    """QDQ-quantise an FP32 ONNX model (bytes) calibrated on `batches` (model-ready inputs), for the
    runtime `flavour` names (see the module docstring)."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ExportError("INT8 export needs onnxruntime (pip install 'edgeseg[cpu]')") from None
    if method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown calibration method '{method}'; choose {', '.join(CALIBRATION_METHODS)}")
    if flavour not in FLAVOURS:
        raise ExportError(f"unknown INT8 flavour '{flavour}'; choose {', '.join(FLAVOURS)}")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

    calib = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    # Gemm/MatMul results stay float (int8 GEMM with float output): a quantised projection output would be
    # propagated into the attention MatMuls, which must stay float (see activation_matmuls).
    extra: dict[str, object] = {"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    tensorrt = flavour == "tensorrt"
    if tensorrt:  # zero points 0 everywhere, float biases
        extra.update({"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    with tempfile.TemporaryDirectory(prefix="edgeseg-int8-") as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32_model)
        # symbolic shape inference + ORT graph fusions first, so quantisation sees the fused graph
        # (shape inference only: its ORT optimisation pass splits GELU into Erf/Mul/Add before the QDQ
        # insertion, and the split form is no longer re-fused at run time)
        quant_pre_process(str(src), str(pre), skip_optimization=True, skip_symbolic_shape=False)
        excluded = activation_matmuls(pre.read_bytes()) + list(exclude_nodes)
        if exclude_depthwise:
            excluded += depthwise_convs(pre.read_bytes())
        try:
            quantize_static(
                str(pre),
                str(dst),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types),
                nodes_to_exclude=excluded,
                per_channel=True,
                activation_type=QuantType.QInt8 if tensorrt else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calib,
                extra_options=extra,
            )
        except StopIteration:
            raise ExportError("no calibration batches; give --calib DIR with at least one image") from None
        return dst.read_bytes()
