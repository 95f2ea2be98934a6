"""What TensorRT's ONNX parser accepts, per release, and a check of an exported graph against it (torch-free).

The tables are written from onnx-tensorrt's `docs/operators.md` (operator, supported input types, notes):

- "8.6": branch 8.6-GA (the parser TensorRT release/8.6 builds, JetPack 6.0);
- "10.x": branch 10.1-GA (the newest 10.x operator matrix available when this was written; JetPack 6.1/6.2
  ship TensorRT 10.3, whose parser was not available to check, so the 10.x column is 10.1's).

Only operators an edgeseg export can contain (plus a few neighbours) are listed: an operator missing from
the table is reported, not assumed fine. Rules that are not in the type column come from the sources named
next to them. TensorRT 11 has no column: its parser was not checked op by op (it is not what JetPack 6 runs;
`export/device_check.sh` parses every variant with the installed TensorRT's own parser). `edgeseg
build-engine` uses `qdq_problems` to refuse INT8 graphs TensorRT cannot build;
the tests and `export/device_check.sh` use `graph_problems` on every exported variant.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, numpy_helper

_F = "FP32 FP16"
_T86 = {  # onnx-tensorrt 8.6-GA docs/operators.md
    "Add": f"{_F} INT32",
    "ArgMax": f"{_F} INT32",
    "BatchNormalization": _F,
    "Cast": f"{_F} INT32 INT8 UINT8 BOOL",
    "Clip": f"{_F} INT8",
    "Concat": f"{_F} INT32 INT8 BOOL",
    "Constant": f"{_F} INT32 INT8 BOOL",
    "Conv": f"{_F} INT8",
    "ConvTranspose": f"{_F} INT8",
    "DequantizeLinear": "INT8",
    "Div": f"{_F} INT32",
    "Equal": f"{_F} INT32",
    "Erf": _F,
    "Expand": f"{_F} INT32 BOOL",
    "Flatten": f"{_F} INT32 BOOL",
    "Gather": f"{_F} INT8 INT32 BOOL",
    "Gemm": f"{_F} INT8",
    "GlobalAveragePool": f"{_F} INT8",
    "Identity": f"{_F} INT32 INT8 BOOL",
    "LayerNormalization": _F,
    "MatMul": _F,
    "Mul": f"{_F} INT32",
    "Pow": _F,
    "QuantizeLinear": _F,
    "Range": f"{_F} INT32",
    "ReduceMax": _F,
    "ReduceMean": _F,
    "ReduceSum": _F,
    "Relu": f"{_F} INT8",
    "Reshape": f"{_F} INT32 INT8 BOOL",
    "Resize": _F,
    "Shape": f"{_F} INT32 INT8 BOOL",
    "Sigmoid": f"{_F} INT8",
    "Slice": f"{_F} INT32 INT8 BOOL",
    "Softmax": _F,
    "Split": f"{_F} INT32 BOOL",
    "Sqrt": _F,
    "Squeeze": f"{_F} INT32 INT8 BOOL",
    "Sub": f"{_F} INT32",
    "Sum": f"{_F} INT32",
    "Tanh": f"{_F} INT8",
    "Transpose": f"{_F} INT32 INT8 BOOL",
    "Unsqueeze": f"{_F} INT32 INT8 BOOL",
    "Where": f"{_F} INT32 BOOL",
}
_G = "FP32 FP16 BF16"
_I = "INT32 INT64"
_T10 = {  # onnx-tensorrt 10.1-GA docs/operators.md
    "Add": f"{_G} {_I}",
    "ArgMax": f"{_G} {_I}",
    "BatchNormalization": _G,
    "Cast": f"{_G} {_I} UINT8 BOOL",
    "Clip": _G,
    "Concat": f"{_G} {_I} BOOL",
    "Constant": f"{_G} {_I} BOOL",
    "Conv": _G,
    "ConvTranspose": _G,
    "DequantizeLinear": "INT8 FP8 INT4",
    "Div": f"{_G} {_I}",
    "Equal": f"{_G} {_I}",
    "Erf": _G,
    "Expand": f"{_G} {_I} BOOL",
    "Flatten": f"{_G} {_I} BOOL",
    "Gather": f"{_G} {_I} BOOL",
    "Gelu": f"{_G} INT8 {_I}",
    "Gemm": _G,
    "GlobalAveragePool": _G,
    "Identity": f"{_G} {_I} BOOL",
    "LayerNormalization": _G,
    "MatMul": _G,
    "Mul": f"{_G} {_I}",
    "Pow": _G,
    "QuantizeLinear": _G,
    "Range": f"{_G} {_I}",
    "ReduceMax": f"{_G} {_I}",
    "ReduceMean": f"{_G} {_I}",
    "ReduceSum": f"{_G} {_I}",
    "Relu": f"{_G} {_I}",
    "Reshape": f"{_G} {_I} BOOL",
    "Resize": _G,
    "Shape": f"{_G} {_I} BOOL",
    "Sigmoid": _G,
    "Slice": f"{_G} {_I} BOOL",
    "Softmax": _G,
    "Split": f"{_G} {_I} BOOL",
    "Sqrt": _G,
    "Squeeze": f"{_G} {_I} BOOL",
    "Sub": f"{_G} {_I}",
    "Sum": f"{_G} {_I}",
    "Tanh": _G,
    "Transpose": f"{_G} {_I} BOOL",
    "Unsqueeze": f"{_G} {_I} BOOL",
    "Where": f"{_G} {_I} BOOL",
}
SUPPORTED_OPS: dict[str, dict[str, frozenset[str]]] = {
    release: {op: frozenset(types.split()) for op, types in table.items()}
    for release, table in (("8.6", _T86), ("10.x", _T10))
}
RELEASES = tuple(SUPPORTED_OPS)
# "TensorRT 8.6 supports operators up to Opset 17"; "TensorRT 10.0 supports ... opset 9 to opset 20"
MAX_OPSET = {"8.6": 17, "10.x": 20}
# operators.md notes: these inputs must be initializers (or Constant outputs)
CONSTANT_INPUTS = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1}
RESIZE_MODES = ("nearest", "linear")
RESIZE_COORDINATES = (
    "half_pixel",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "asymmetric",
    "align_corners",
)
# NvInfer.h (release/8.6 and release/10.3, IIdentityLayer/ICastLayer): UINT8 converts only from/to FLOAT/HALF
UINT8_PARTNERS = ("FP32", "FP16")

_TYPE_NAMES = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
    TensorProto.BOOL: "BOOL",
    TensorProto.DOUBLE: "DOUBLE",
}


def _tensor_types(model: onnx.ModelProto) -> dict[str, str]:
    """Element type name of every tensor whose type is known (after ONNX shape/type inference)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a graph ONNX cannot infer still gets the types it declares
        inferred = model
    graph = inferred.graph
    types = {t.name: _TYPE_NAMES.get(t.data_type, str(t.data_type)) for t in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        elem = info.type.tensor_type.elem_type
        if elem:
            types[info.name] = _TYPE_NAMES.get(elem, str(elem))
    return types


def _constants(model: onnx.ModelProto) -> set[str]:
    graph = model.graph
    return {t.name for t in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _initializer_values(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    values = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            value = _attr(n, "value")
            if isinstance(value, onnx.TensorProto):
                values[n.output[0]] = value
    return values


def qdq_problems(model: onnx.ModelProto) -> list[str]:
    """Why TensorRT cannot build this graph's Q/DQ nodes (empty: fine). TensorRT takes symmetric INT8 only:
    every QuantizeLinear/DequantizeLinear needs an INT8 zero point that is all zeros (operators.md: "must be
    zero"; an absent zero point means UINT8 in ONNX), and DequantizeLinear must read INT8, not INT32 biases."""
    values = _initializer_values(model)
    types = _tensor_types(model)
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zp = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if node.op_type == "DequantizeLinear" and types.get(node.input[0]) == "INT32":
            problems.append(f"{node.name or node.output[0]}: INT32 (quantised bias) input")
        elif zp is None:
            problems.append(f"{node.name or node.output[0]}: no zero point (UINT8 by default)")
        elif zp in values:
            tensor = values[zp]
            if tensor.data_type != TensorProto.INT8:
                problems.append(
                    f"{node.name or node.output[0]}: {_TYPE_NAMES.get(tensor.data_type, '?')} zero point"
                )
            elif numpy_helper.to_array(tensor).any():
                problems.append(f"{node.name or node.output[0]}: non-zero (asymmetric) zero point")
        else:
            problems.append(f"{node.name or node.output[0]}: zero point is not a constant")
    return problems


def graph_problems(model: onnx.ModelProto, release: str) -> list[str]:
    """Everything in `model` that TensorRT `release`'s ONNX parser rejects or mis-reads (empty: fine)."""
    if release not in SUPPORTED_OPS:
        raise ValueError(f"unknown TensorRT release '{release}'; known: {', '.join(RELEASES)}")
    table = SUPPORTED_OPS[release]
    types = _tensor_types(model)
    constants = _constants(model)
    problems: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset > MAX_OPSET[release]:
        problems.append(f"opset {opset} > {MAX_OPSET[release]}")
    for node in model.graph.node:
        where = f"{node.op_type} '{node.name or node.output[0]}'"
        if node.domain not in ("", "ai.onnx") or node.op_type not in table:
            problems.append(f"{where}: operator not supported")
            continue
        in_type = types.get(node.input[0]) if node.input and node.input[0] else None
        if in_type == "INT64" and release == "8.6":
            in_type = "INT32"  # 8.6: "TensorRT will attempt to cast down INT64 to INT32"
        if node.op_type != "Constant" and in_type is not None and in_type not in table[node.op_type]:
            problems.append(f"{where}: input type {in_type} not supported")
        problems += _node_rules(node, where, release, types, constants)
    return problems + qdq_problems(model)


def _node_rules(
    node: onnx.NodeProto, where: str, release: str, types: dict[str, str], constants: set[str]
) -> list[str]:
    problems = []
    op = node.op_type
    if op == "Cast":
        src, dst = types.get(node.input[0]), _TYPE_NAMES.get(int(_attr(node, "to", 0)))  # type: ignore[arg-type]
        if (dst == "UINT8" and src not in UINT8_PARTNERS) or (src == "UINT8" and dst not in UINT8_PARTNERS):
            problems.append(f"{where}: Cast {src} -> {dst} (UINT8 converts only from/to FP32/FP16)")
    elif (
        op == "Shape"
        and release == "8.6"
        and (_attr(node, "start") is not None or _attr(node, "end") is not None)
    ):
        problems.append(f"{where}: Shape start/end attributes (ignored by the 8.6 parser; use Shape + Slice)")
    elif op in CONSTANT_INPUTS:
        k = CONSTANT_INPUTS[op]
        if len(node.input) > k and node.input[k] and node.input[k] not in constants:
            problems.append(f"{where}: axes must be an initializer")
    elif op == "Resize":
        mode = _attr(node, "mode", b"nearest")
        coords = _attr(node, "coordinate_transformation_mode", b"half_pixel")
        mode, coords = (v.decode() if isinstance(v, bytes) else str(v) for v in (mode, coords))
        if mode not in RESIZE_MODES or coords not in RESIZE_COORDINATES:
            problems.append(f"{where}: Resize mode {mode} / {coords} not supported")
        if _attr(node, "antialias", 0):
            problems.append(f"{where}: antialiasing not supported")
    elif op == "LayerNormalization" and len([o for o in node.output if o]) > 1:
        problems.append(f"{where}: only the first output Y is supported")  # 10.1 operators.md
    return problems


def custom_domains(model: onnx.ModelProto) -> list[str]:
    """Non-standard op domains (TensorRT's parser only knows the default one)."""
    return sorted({n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")})
