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
    graph = model.graph
    if [o.name for o in graph.output] != [scores]:
        raise ExportError(f"expected a single '{scores}' graph output to append the labels head to")
    if static_size is not None and batch is None:
        raise ExportError("a static-size labels head needs a static batch")
    nodes = []
    resized = scores
    if channels_last:
        resized = "labels_head/nhwc"
        nodes.append(helper.make_node("Transpose", [scores], [resized], perm=[0, 2, 3, 1]))
    # sizes of the Resize output, in the layout of the tensor resized: (B, H, W, C) or (B, C, H, W)
    if static_size is not None:
        h, w = static_size
        values = [batch, h, w, num_classes] if channels_last else [batch, num_classes, h, w]
        graph.initializer.append(helper.make_tensor("labels_head/sizes", TensorProto.INT64, [4], values))
    else:
        hw = (1, 3) if nhwc_input else (2, 4)
        slices = {"hw": hw, "b": (0, 1), "c": (3, 4)} if channels_last else {"hw": hw, "bc": (0, 2)}
        for part, (start, end) in slices.items():
            graph.initializer.append(
                helper.make_tensor(f"labels_head/{part}_start", TensorProto.INT64, [1], [start])
            )
            graph.initializer.append(
                helper.make_tensor(f"labels_head/{part}_end", TensorProto.INT64, [1], [end])
            )
        graph.initializer.append(helper.make_tensor("labels_head/axes", TensorProto.INT64, [1], [0]))
        order = ["b", "hw", "c"] if channels_last else ["bc", "hw"]
        nodes += [
            helper.make_node("Shape", [graph.input[0].name], ["labels_head/in_shape"]),
            helper.make_node("Shape", [resized], ["labels_head/scores_shape"]),
            *(
                _slice(
                    "labels_head/in_shape" if part == "hw" else "labels_head/scores_shape",
                    f"labels_head/{part}",
                    part,
                )
                for part in order
            ),
            helper.make_node("Concat", [f"labels_head/{p}" for p in order], ["labels_head/sizes"], axis=0),
        ]
    nodes += [
        helper.make_node(
            "Resize",
            [resized, "", "", "labels_head/sizes"],
            ["labels_head/up"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node(
            "ArgMax", ["labels_head/up"], ["labels_head/argmax"], axis=3 if channels_last else 1, keepdims=0
        ),
    ]
    if num_classes <= 256:  # UINT8 through FLOAT: TensorRT casts to UINT8 only from FLOAT/HALF
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
