"""Multiply-accumulates (MACs) of an ONNX graph, counted from the graph itself after shape inference.

Counted: Conv, ConvTranspose, MatMul, Gemm (the ops that dominate a segmenter's cost; the same
convention as `edgeseg.models.flops.count_gmacs` - elementwise ops, norms, softmax, resizes excluded),
and their integer forms in ONNX Runtime's QOperator INT8 models (QLinearConv, ConvInteger,
QLinearMatMul, MatMulInteger); QDQ INT8 models keep plain Conv/MatMul nodes and count as such.
GFLOPs = 2 x GMACs. Needs the `onnx` package (imported lazily); weights stored as external data are not
loaded - only their shapes are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# op -> (kind, index of the weight / second operand among the node inputs)
_OPS = {
    "Conv": ("conv", 1),
    "ConvInteger": ("conv", 1),
    "QLinearConv": ("conv", 3),
    "ConvTranspose": ("convT", 1),
    "MatMul": ("matmul", 1),
    "MatMulInteger": ("matmul", 1),
    "QLinearMatMul": ("matmul", 3),
    "Gemm": ("gemm", 1),
}
COUNTED_OPS = tuple(_OPS)


@dataclass
class GraphMacs:
    macs: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted_nodes: list[str] = field(default_factory=list)  # counted ops whose shapes stayed unknown
    constant_macs: int = 0  # products of weights only: runtimes fold them once at load, not per frame

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {
            "gmacs": round(self.gmacs, 4),
            "gflops": round(self.gflops, 4),
            "by_op_gmacs": {k: round(v / 1e9, 4) for k, v in sorted(self.by_op.items())},
            "uncounted_nodes": self.uncounted_nodes,
            "constant_folded_gmacs": round(self.constant_macs / 1e9, 6),
            "convention": "MACs per forward pass of Conv/ConvTranspose/MatMul/Gemm (weight-only products "
            "excluded: folded at load time); GFLOPs = 2 x GMACs",
        }


def _dims(value_info: Any) -> list[int] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            return None
        dims.append(int(d.dim_value))
    return dims


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_macs(op: str, node: Any, shape: dict[str, list[int]]) -> int | None:
    """MACs of one node from its input/output shapes; None when a needed shape is unknown."""
    if op not in _OPS:
        raise ValueError(f"not a counted op: {op}")
    kind, w_index = _OPS[op]
    ins = [shape.get(name) if name else None for name in node.input]
    a = ins[0] if ins else None
    w = ins[w_index] if len(ins) > w_index else None
    out = shape.get(node.output[0]) if node.output else None
    if kind == "conv":
        if w is None or out is None:
            return None
        # out: (N, Cout, *spatial); w: (Cout, Cin/groups, *kernel) -> one MAC per output x Cin/groups x kernel
        return math.prod(out) * math.prod(w[1:])
    if kind == "convT":
        if a is None or w is None:
            return None
        # every input pixel scatters into Cout/groups x kernel outputs; w: (Cin, Cout/groups, *kernel)
        return math.prod(a) * math.prod(w[1:])
    if kind == "matmul":
        if a is None or out is None:
            return None
        return math.prod(out) * a[-1]  # numpy matmul semantics: contract A's last axis
    if a is None or out is None or len(a) != 2:  # Gemm
        return None
    k = a[0] if _attr(node, "transA", 0) else a[1]
    return math.prod(out) * k


# Shape arithmetic exporters emit (Shape -> Gather -> Div -> Cast -> Concat -> Reshape) that onnx's own data
# propagation does not follow through Div/Cast: small integer tensors are evaluated here with numpy instead.
_SMALL = 4096  # elements; shape tensors are tiny, weights are never evaluated


def _np_eval(node: Any, args: list[Any]) -> Any:
    """Value of a shape-arithmetic node whose inputs are all known small arrays; None if unsupported."""
    import numpy as np
    from onnx import helper

    op = node.op_type
    a = args[0] if args else None
    if op == "Identity":
        return a
    if op == "Cast":
        return a.astype(helper.tensor_dtype_to_np_dtype(_attr(node, "to", 7)))
    if op in ("Add", "Sub", "Mul", "Max", "Min", "Equal"):
        fn = {
            "Add": np.add,
            "Sub": np.subtract,
            "Mul": np.multiply,
            "Max": np.maximum,
            "Min": np.minimum,
            "Equal": np.equal,
        }[op]
        return fn(a, args[1])
    if op == "Div":
        q = np.true_divide(a, args[1])
        return np.trunc(q).astype(a.dtype) if np.issubdtype(a.dtype, np.integer) else q.astype(a.dtype)
    if op in ("Floor", "Ceil", "Sqrt", "Neg", "Abs"):
        return {"Floor": np.floor, "Ceil": np.ceil, "Sqrt": np.sqrt, "Neg": np.negative, "Abs": np.abs}[op](a)
    if op == "Gather":
        return np.take(a, args[1], axis=_attr(node, "axis", 0))
    if op in ("Unsqueeze", "Squeeze"):
        axes = args[1] if len(args) > 1 else _attr(node, "axes", None)
        if op == "Squeeze":
            return np.squeeze(a, axis=tuple(int(x) for x in axes)) if axes is not None else np.squeeze(a)
        out = a
        for ax in sorted(int(x) % (a.ndim + len(axes)) for x in axes):
            out = np.expand_dims(out, ax)
        return out
    if op == "Concat":
        return np.concatenate([np.atleast_1d(x) for x in args], axis=_attr(node, "axis", 0))
    if op == "Slice" and len(args) >= 3:
        axes = args[3] if len(args) > 3 else range(len(args[1]))
        steps = args[4] if len(args) > 4 else [1] * len(args[1])
        index = [slice(None)] * a.ndim
        for st, en, ax, sp in zip(args[1], args[2], axes, steps, strict=False):
            index[int(ax)] = slice(int(st), int(en), int(sp))
        return a[tuple(index)]
    if op == "Where":
        return np.where(a, args[1], args[2])
    if op == "Range":
        return np.arange(a, args[1], args[2]).astype(a.dtype)
    return None


def _propagate(model: Any) -> dict[str, list[int]]:
    """Concrete shapes of every tensor, node by node: onnx's per-op inference fed with evaluated shape data."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    opsets = {o.domain or "": o.version for o in model.opset_import}
    types: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for init in g.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
        if math.prod(init.dims) <= _SMALL and init.data_location != onnx.TensorProto.EXTERNAL:
            values[init.name] = numpy_helper.to_array(init)
    for inp in g.input:
        if inp.name not in types:
            types[inp.name] = inp.type
    for node in g.node:
        out_value = None
        ins = [i for i in node.input if i]
        if node.op_type == "Constant":
            t = _attr(node, "value", None)
            if isinstance(t, onnx.TensorProto):
                out_value = numpy_helper.to_array(t)
        elif node.op_type == "Shape" and node.input[0] in types:
            dims = _dims(onnx.helper.make_value_info("_", types[node.input[0]]))
            if dims is not None:
                start, end = _attr(node, "start", 0), _attr(node, "end", None)
                out_value = np.asarray(dims[start:end], np.int64)
        elif ins and all(i in values for i in ins):
            try:
                out_value = _np_eval(node, [values[i] if i else None for i in node.input])
            except Exception:  # unsupported corner of an op: leave the value unknown
                out_value = None
        if out_value is not None and np.size(out_value) <= _SMALL and len(node.output) == 1:
            values[node.output[0]] = np.asarray(out_value)
        try:
            schema = onnx.defs.get_schema(node.op_type, opsets.get(node.domain or "", 1), node.domain or "")
            inferred = onnx.shape_inference.infer_node_outputs(
                schema,
                node,
                {i: types[i] for i in ins if i in types},
                {i: numpy_helper.from_array(np.asarray(values[i])) for i in ins if i in values},
                opset_imports=list(model.opset_import),
            )
        except Exception:  # unknown op / unknown input type: its outputs stay unknown
            inferred = {}
        types.update(inferred)
        for name, value in ((o, values.get(o)) for o in node.output):
            if value is not None and name not in types:
                types[name] = helper.make_tensor_type_proto(
                    helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)
                )
    shapes = {}
    for name, t in types.items():
        dims = _dims(onnx.helper.make_value_info(name, t))
        if dims is not None or (t.tensor_type.HasField("shape") and len(t.tensor_type.shape.dim) == 0):
            shapes[name] = dims or []
    return shapes


def count_onnx_macs(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> GraphMacs:
    """Count the MACs of `path`. `input_shapes` pins dynamic input dims (e.g. {'input': [1, 3, 512, 1024]})."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    for inp in graph.input:
        if inp.name in initializer_names or not input_shapes or inp.name not in input_shapes:
            continue
        dims = inp.type.tensor_type.shape.dim
        wanted = input_shapes[inp.name]
        if len(dims) != len(wanted):
            raise ValueError(f"input '{inp.name}' has rank {len(dims)}, got shape {wanted}")
        for d, v in zip(dims, wanted, strict=True):
            d.Clear()
            d.dim_value = int(v)
    shape = _propagate(model)
    result = GraphMacs()
    graph_inputs = {i.name for i in graph.input}
    constant = initializer_names - graph_inputs  # an initializer that is also an input can be overridden
    for node in graph.node:
        ins = [i for i in node.input if i]
        folded = node.op_type == "Constant" or (bool(ins) and all(i in constant for i in ins))
        if folded:
            constant.update(node.output)
        if node.domain not in ("", "ai.onnx"):
            # contrib ops (com.microsoft FusedConv, QGemm, ...) are not counted: say so rather than hide it
            if any(k in node.op_type for k in ("Conv", "MatMul", "Gemm", "Attention")):
                result.uncounted_nodes.append(f"{node.domain}.{node.op_type}:{node.name or node.output[0]}")
            continue
        if node.op_type not in COUNTED_OPS:
            continue
        macs = node_macs(node.op_type, node, shape)
        if macs is None:
            result.uncounted_nodes.append(node.name or node.output[0])
            continue
        if folded:
            result.constant_macs += macs
            continue
        result.macs += macs
        result.by_op[node.op_type] = result.by_op.get(node.op_type, 0) + macs
    return result


def onnx_input_shapes(path: str | Path) -> dict[str, list[int | str]]:
    """Graph inputs (not initializers) with their dims; symbolic dims come back as their names."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out: dict[str, list[int | str]] = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        out[inp.name] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in inp.type.tensor_type.shape.dim
        ]
    return out
