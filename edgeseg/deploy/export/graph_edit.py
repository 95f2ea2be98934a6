"""Small, explicit edits of exported ONNX graphs (torch-free): the full-resolution labels head,
metadata, graph clean-up and FP16 conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import onnx
from onnx import TensorProto, helper

from edgeseg.deploy.runtime import onnx_meta
from edgeseg.errors import ExportError

# Kept in FP32 by --fp16: normalisation statistics and exponentials overflow or lose precision in half.
FP16_KEEP_FP32 = (
    "LayerNormalization",
    "Softmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "Pow",
    "Sqrt",
    "ArgMax",
)
# TensorRT 8.6's ONNX parser reads IR <= 9; the torch exporter writes 8. Never write newer.
MAX_IR_VERSION = 9


def append_labels_head(
    model: onnx.ModelProto,
    scores: str,
    num_classes: int,
    *,
    nhwc_input: bool,
    static_size: tuple[int, int] | None,
    batch: int | None,
    channels_last: bool = True,
) -> onnx.ModelProto:
    """Replace the graph output `scores` (B,C,h,w logits) with `labels` (B,H,W) at the input resolution:
    Transpose to NHWC -> bilinear Resize (half-pixel, = torch align_corners=False) -> ArgMax over the
    contiguous class axis -> Cast to uint8 through float (int32 above 256 classes).

    Channels-last is deliberate: ArgMax over the innermost axis reads each pixel's scores contiguously,
    and ONNX Runtime's NHWC bilinear kernel is faster than its NCHW one (measured ~35% on this step).

    Written for every TensorRT edgeseg supports (see trt_support.py): TensorRT converts to UINT8 only from
    FLOAT/HALF (NvInfer.h, 8.6 and 10.x), so the int64 argmax goes through a FLOAT Cast first (exact for
    class ids < 2^24); the dynamic sizes use Shape + Slice, because TensorRT 8.6's parser ignores Shape's
    start/end attributes (honoured from 10.0 on).

    `channels_last=False` (graphs for OpenVINO): Resize and ArgMax on the NCHW scores. OpenVINO's CPU
    Interpolate on an NHWC tensor is ~5x slower than on NCHW (measured: 140 of 432 ms per 512x1024 frame).
    """
    if not channels_last:
        return _append_nchw_labels_head(
            model, scores, num_classes, nhwc_input=nhwc_input, static_size=static_size, batch=batch
        )
    graph = model.graph
    if [o.name for o in graph.output] != [scores]:
        raise ExportError(f"expected a single '{scores}' graph output to append the labels head to")
    nodes = [helper.make_node("Transpose", [scores], ["labels_head/nhwc"], perm=[0, 2, 3, 1])]
    if static_size is not None:
        h, w = static_size
        sizes = helper.make_tensor(
            "labels_head/sizes", TensorProto.INT64, [4], [batch or 1, h, w, num_classes]
        )
        graph.initializer.append(sizes)
        if batch is None:
            raise ExportError("a static-size labels head needs a static batch")
    else:
        in_name = graph.input[0].name
        hw = (1, 3) if nhwc_input else (2, 4)
        for name, values in (
            ("hw_start", [hw[0]]),
            ("hw_end", [hw[1]]),
            ("b_start", [0]),
            ("b_end", [1]),
            ("c_start", [3]),
            ("c_end", [4]),
            ("axes", [0]),
        ):
            graph.initializer.append(
                helper.make_tensor(f"labels_head/{name}", TensorProto.INT64, [1], values)
            )
        nodes += [
            helper.make_node("Shape", [in_name], ["labels_head/in_shape"]),
            helper.make_node("Shape", ["labels_head/nhwc"], ["labels_head/nhwc_shape"]),
            _slice("labels_head/in_shape", "labels_head/hw", "hw"),
            _slice("labels_head/nhwc_shape", "labels_head/b", "b"),
            _slice("labels_head/nhwc_shape", "labels_head/c", "c"),
            helper.make_node(
                "Concat", ["labels_head/b", "labels_head/hw", "labels_head/c"], ["labels_head/sizes"], axis=0
            ),
        ]
    nodes += [
        helper.make_node(
            "Resize",
            ["labels_head/nhwc", "", "", "labels_head/sizes"],
            ["labels_head/up"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node("ArgMax", ["labels_head/up"], ["labels_head/argmax"], axis=3, keepdims=0),
    ]
    if num_classes <= 256:
        label_type = TensorProto.UINT8
        nodes += [
            helper.make_node("Cast", ["labels_head/argmax"], ["labels_head/argmax_f"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["labels_head/argmax_f"], ["labels"], to=label_type),
        ]
    else:
        label_type = TensorProto.INT32
        nodes.append(helper.make_node("Cast", ["labels_head/argmax"], ["labels"], to=label_type))
    graph.node.extend(nodes)
    dims: list[Any] = [
        batch if batch else "batch",
        static_size[0] if static_size else "height",
        static_size[1] if static_size else "width",
    ]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("labels", label_type, dims))
    return model


def _append_nchw_labels_head(
    model: onnx.ModelProto,
    scores: str,
    num_classes: int,
    *,
    nhwc_input: bool,
    static_size: tuple[int, int] | None,
    batch: int | None,
) -> onnx.ModelProto:
    """The labels head on NCHW scores: bilinear Resize (half-pixel) -> ArgMax over channels -> Cast."""
    graph = model.graph
    if [o.name for o in graph.output] != [scores]:
        raise ExportError(f"expected a single '{scores}' graph output to append the labels head to")
    nodes = []
    if static_size is not None:
        if batch is None:
            raise ExportError("a static-size labels head needs a static batch")
        graph.initializer.append(
            helper.make_tensor(
                "labels_head/sizes", TensorProto.INT64, [4], [batch, num_classes, *static_size]
            )
        )
    else:
        hw = (1, 3) if nhwc_input else (2, 4)
        for name, values in (
            ("hw_start", [hw[0]]),
            ("hw_end", [hw[1]]),
            ("bc_start", [0]),
            ("bc_end", [2]),
            ("axes", [0]),
        ):
            graph.initializer.append(
                helper.make_tensor(f"labels_head/{name}", TensorProto.INT64, [1], values)
            )
        nodes += [
            helper.make_node("Shape", [graph.input[0].name], ["labels_head/in_shape"]),
            helper.make_node("Shape", [scores], ["labels_head/scores_shape"]),
            _slice("labels_head/in_shape", "labels_head/hw", "hw"),
            _slice("labels_head/scores_shape", "labels_head/bc", "bc"),
            helper.make_node("Concat", ["labels_head/bc", "labels_head/hw"], ["labels_head/sizes"], axis=0),
        ]
    label_type = TensorProto.UINT8 if num_classes <= 256 else TensorProto.INT32
    nodes += [
        helper.make_node(
            "Resize",
            [scores, "", "", "labels_head/sizes"],
            ["labels_head/up"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node("ArgMax", ["labels_head/up"], ["labels_head/argmax"], axis=1, keepdims=0),
        helper.make_node("Cast", ["labels_head/argmax"], ["labels"], to=label_type),
    ]
    graph.node.extend(nodes)
    dims: list[Any] = [
        batch if batch else "batch",
        static_size[0] if static_size else "height",
        static_size[1] if static_size else "width",
    ]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("labels", label_type, dims))
    return model


def _slice(data: str, out: str, part: str) -> onnx.NodeProto:
    """Slice along axis 0 with initializer starts/ends/axes (TensorRT needs constant axes)."""
    return helper.make_node(
        "Slice", [data, f"labels_head/{part}_start", f"labels_head/{part}_end", "labels_head/axes"], [out]
    )


def set_metadata(model: onnx.ModelProto, meta: Mapping[str, Any]) -> None:
    del model.metadata_props[:]
    for key, value in onnx_meta.encode(meta).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    model.producer_name = "edgeseg"


def slim(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """onnxslim clean-up (constant folding, dead nodes, common sub-expressions, pattern fusions).
    Returns (model, slimmed?). Weight tying is skipped: merging identical initializers (e.g. all-zero
    biases) makes one tensor feed unrelated nodes, which breaks ONNX Runtime's NCHWc conv rewrite and
    the quantiser's per-node choices."""
    try:
        import onnxslim
    except ImportError:
        return model, False
    out = onnxslim.slim(model, skip_optimizations=["weight_tying"])
    out.ir_version = min(out.ir_version, MAX_IR_VERSION)
    return out, True


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, FP32 inputs/outputs, FP32 kept for `FP16_KEEP_FP32` ops."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP16_KEEP_FP32))
    out.ir_version = min(out.ir_version, MAX_IR_VERSION)
    return out


def count_ops(model: onnx.ModelProto) -> int:
    return len(model.graph.node)
