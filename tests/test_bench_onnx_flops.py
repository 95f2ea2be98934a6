"""GMACs counted from ONNX graphs: hand-built graphs with known counts, and SegFormer against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeseg.bench.onnx_flops import count_onnx_macs, onnx_input_shapes


def _save(
    tmp_path: Path, nodes: list, inputs: list, outputs: list, inits: list, name: str = "g.onnx"
) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_conv_grouped_conv_and_conv_transpose(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])
    y = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node(
            "Conv",
            ["a", "w2"],
            ["b"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            group=8,
            strides=[2, 2],
            name="dw",
        ),
        helper.make_node("ConvTranspose", ["b", "w3"], ["z"], kernel_shape=[2, 2], strides=[2, 2], name="up"),
    ]
    path = _save(
        tmp_path, nodes, [x], [y], [_w("w1", 8, 4, 3, 3), _w("w2", 8, 1, 3, 3), _w("w3", 8, 2, 2, 2)]
    )
    r = count_onnx_macs(path, {"x": [2, 4, 16, 16]})
    conv = 2 * 8 * 16 * 16 * (4 * 9)  # N x Cout x H x W x (Cin/groups x k x k)
    dw = 2 * 8 * 8 * 8 * (1 * 9)  # stride 2 -> 8x8 outputs, depth-wise
    up = 2 * 8 * 8 * 8 * (2 * 2 * 2)  # each input pixel scatters into Cout x k x k
    assert r.by_op == {"Conv": conv + dw, "ConvTranspose": up}
    assert r.macs == conv + dw + up and r.uncounted_nodes == []
    assert r.to_dict()["gflops"] == pytest.approx(2 * r.gmacs, abs=1e-4)


def test_batched_matmul_and_gemm_with_transpose(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 5])
    g = helper.make_tensor_value_info("g", TensorProto.FLOAT, [5, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("m", "q")]
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["m"], name="mm"),
        helper.make_node("Gemm", ["g", "c"], ["q"], transA=1, name="gemm"),
    ]
    path = _save(tmp_path, nodes, [a, g], outs, [_w("b", 5, 7), _w("c", 5, 4)])
    r = count_onnx_macs(path)
    assert r.by_op == {"MatMul": 2 * 3 * 7 * 5, "Gemm": 3 * 4 * 5}


def test_unknown_shapes_are_reported_not_guessed(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], name="c1")]
    path = _save(tmp_path, nodes, [x], [y], [_w("w", 8, 4, 1, 1)])
    r = count_onnx_macs(path)  # dynamic input, not pinned
    assert r.macs == 0 and r.uncounted_nodes == ["c1"]
    assert onnx_input_shapes(path) == {"x": ["n", 4, "h", "w"]}


def test_weight_only_products_are_reported_apart(tmp_path: Path) -> None:
    """(W1 @ W2) is folded by the runtime at load time: not part of the per-frame count."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("MatMul", ["w1", "w2"], ["w12"], name="fold"),
        helper.make_node("MatMul", ["x", "w12"], ["y"], name="per_frame"),
    ]
    path = _save(tmp_path, nodes, [x], [y], [_w("w1", 4, 8), _w("w2", 8, 3)])
    r = count_onnx_macs(path)
    assert r.macs == 6 * 3 * 4 and r.constant_macs == 4 * 3 * 8


def test_shapes_computed_by_division_are_followed(tmp_path: Path) -> None:
    """Reshape(x, [n, c / heads, -1]) - onnx's own data propagation stops at Div; the count must not."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, "l"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    i64 = lambda name, v: numpy_helper.from_array(np.asarray(v, np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["c"], axis=0),
        helper.make_node("Div", ["c", "two"], ["half"]),
        helper.make_node("Cast", ["half"], ["half64"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["half64", "zero1"], ["half1"]),
        helper.make_node("Concat", ["minus1", "half1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),  # (n*l*2, 4)
        helper.make_node("MatMul", ["r", "w"], ["y"], name="mm"),
    ]
    path = _save(
        tmp_path,
        nodes,
        [x],
        [y],
        [i64("one", 1), i64("two", 2), i64("zero1", [0]), i64("minus1", [-1]), _w("w", 4, 5)],
    )
    r = count_onnx_macs(path, {"x": [2, 8, 3]})
    assert r.uncounted_nodes == [] and r.macs == (2 * 8 * 3 // 4) * 5 * 4


@pytest.mark.slow
def test_segformer_export_matches_torch_count_exactly(tmp_path: Path) -> None:
    """Equal to torch's FlopCounterMode with attention on the math path (counted as bmm); the head's
    weight-folding order is switched off so that torch, too, does no weight-only products. Dynamic H/W:
    the shapes inside the graph are computed (Shape -> Div -> Reshape) and must be followed."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from edgeseg.models.registry import create_model

    model = create_model("segformer_tiny").eval()
    model.head.fused_order = False
    x = torch.zeros(1, 3, 32, 64)
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        model,
        x,
        str(path),
        opset_version=17,
        input_names=["input"],
        dynamo=False,
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}},
    )  # the harder case: shapes computed
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, sdpa_kernel(SDPBackend.MATH):
        model(x)
    r = count_onnx_macs(path, {"input": [1, 3, 32, 64]})
    assert r.uncounted_nodes == [] and r.constant_macs == 0
    assert r.macs == counter.get_total_flops() // 2
