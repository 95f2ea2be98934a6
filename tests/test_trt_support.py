"""Exported graphs against what TensorRT 8.6 / 10.x parse (edgeseg/deploy/trt/support.py), and the changed
labels head (float hop before UINT8, Shape + Slice) giving the same labels as before in ONNX Runtime."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeseg.deploy.trt.support import RELEASES, SUPPORTED_OPS, graph_problems, qdq_problems

VARIANTS = ("labels", "logits", "probs", "preprocess", "dynamic", "fp16")


def _load(deploy: SimpleNamespace, name: str) -> onnx.ModelProto:
    if name.startswith("int8_"):
        return onnx.load(str(deploy.exported_int8(name[len("int8_") :])[0]))
    return onnx.load(str(deploy.exported(name)[0]))


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("variant", [*VARIANTS, "int8_tensorrt"])
def test_every_exported_variant_parses_on_tensorrt(
    deploy: SimpleNamespace, variant: str, release: str
) -> None:
    assert graph_problems(_load(deploy, variant), release) == []


def test_onnxruntime_int8_graph_is_not_for_tensorrt(deploy: SimpleNamespace) -> None:
    model = _load(deploy, "int8_onnxruntime")
    problems = qdq_problems(model)
    assert any("INT32 (quantised bias)" in p for p in problems)
    assert any("UINT8 zero point" in p for p in problems)
    assert qdq_problems(_load(deploy, "int8_tensorrt")) == []
    for release in RELEASES:
        assert graph_problems(model, release)


def test_tables_come_from_the_operator_matrix() -> None:
    """Spot checks against onnx-tensorrt docs/operators.md (8.6-GA and 10.1-GA)."""
    assert "UINT8" in SUPPORTED_OPS["8.6"]["Cast"] and "INT64" not in SUPPORTED_OPS["8.6"]["Cast"]
    assert SUPPORTED_OPS["8.6"]["DequantizeLinear"] == {"INT8"}
    assert "INT8" in SUPPORTED_OPS["8.6"]["Conv"] and "INT8" not in SUPPORTED_OPS["10.x"]["Conv"]
    assert "INT64" in SUPPORTED_OPS["10.x"]["ArgMax"] and "Gelu" not in SUPPORTED_OPS["8.6"]


# -- the previous labels head, rebuilt here as it was exported before, for comparison --------------------------


def _scores_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """The exported graph without its labels head: output `logits` again."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep = [n for n in graph.node if not any(o == "labels" or o.startswith("labels_head/") for o in n.output)]
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if not t.name.startswith("labels_head/")]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, None))
    return out


def _legacy_head(scores: onnx.ModelProto, static: tuple[int, int] | None) -> onnx.ModelProto:
    """The head before this change: Shape(start/end) for the sizes and ArgMax -> Cast(UINT8) directly."""
    model = onnx.ModelProto()
    model.CopyFrom(scores)
    graph = model.graph
    nodes = [helper.make_node("Transpose", ["logits"], ["old/nhwc"], perm=[0, 2, 3, 1])]
    if static is not None:
        graph.initializer.append(helper.make_tensor("old/sizes", TensorProto.INT64, [4], [1, *static, 19]))
    else:
        nodes += [
            helper.make_node("Shape", [graph.input[0].name], ["old/hw"], start=2, end=4),
            helper.make_node("Shape", ["old/nhwc"], ["old/b"], start=0, end=1),
            helper.make_node("Shape", ["old/nhwc"], ["old/c"], start=3, end=4),
            helper.make_node("Concat", ["old/b", "old/hw", "old/c"], ["old/sizes"], axis=0),
        ]
    nodes += [
        helper.make_node(
            "Resize",
            ["old/nhwc", "", "", "old/sizes"],
            ["old/up"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node("ArgMax", ["old/up"], ["old/argmax"], axis=3, keepdims=0),
        helper.make_node("Cast", ["old/argmax"], ["labels"], to=TensorProto.UINT8),
    ]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("labels", TensorProto.UINT8, None))
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("variant", ["labels", "dynamic"])
def test_changed_labels_head_gives_the_previous_labels(deploy: SimpleNamespace, variant: str) -> None:
    new = _load(deploy, variant)
    old = _legacy_head(_scores_only(new), None if variant == "dynamic" else deploy.SIZE)
    if variant == "dynamic":
        assert any("Shape start/end" in p for p in graph_problems(old, "8.6"))
    assert any("Cast INT64 -> UINT8" in p for p in graph_problems(old, "8.6"))
    rng = np.random.default_rng(0)
    sizes = [deploy.SIZE, (48, 96)] if variant == "dynamic" else [deploy.SIZE]
    for h, w in sizes:
        x = rng.normal(size=(1, 3, h, w)).astype(np.float32)
        got, want = _run(new, x), _run(old, x)
        assert got.dtype == want.dtype == np.uint8 and got.shape == (1, h, w)
        assert np.array_equal(got, want)
