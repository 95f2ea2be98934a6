"""`edgeseg export`: parity for every output kind, --preprocess, dynamic shapes, FP16, INT8, failure paths."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from edgeseg.checkpoint import load_model
from edgeseg.cli import main
from edgeseg.deploy.export.export_model import ExportSegmentor, reference_output
from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx
from edgeseg.deploy.runtime.calibration import synthetic_frames
from edgeseg.deploy.runtime.onnx_meta import read_onnx_file_meta
from edgeseg.deploy.runtime.preprocess import normalize_batch, uint8_batch
from edgeseg.errors import ConfigError, ExportError

pytestmark = pytest.mark.slow


def _torch_labels(deploy: SimpleNamespace, frames: list[np.ndarray]) -> np.ndarray:
    model = load_model(deploy.tiny_checkpoint())
    x = torch.from_numpy(normalize_batch(frames, deploy.SIZE, model.meta["mean"], model.meta["std"]))
    return reference_output(model, x, "labels").numpy()


def test_export_twin_matches_model_exactly_in_torch(deploy: SimpleNamespace) -> None:
    """The inference-ordered twin (folded BN, fused head, scaled q) computes the model's own logits."""
    model = load_model(deploy.tiny_checkpoint())
    frames = synthetic_frames(2, deploy.SIZE, seed=3)
    x = torch.from_numpy(normalize_batch(frames, deploy.SIZE, model.meta["mean"], model.meta["std"]))
    with torch.inference_mode():
        ref = model(x)
        twin = ExportSegmentor(model)(x)
        twin_pre = ExportSegmentor(model, preprocess=True)(torch.from_numpy(uint8_batch(frames, deploy.SIZE)))
    assert torch.allclose(twin, ref, atol=1e-5)
    assert torch.allclose(twin_pre, ref, atol=1e-4)


@pytest.mark.parametrize("name", ["labels", "logits", "probs", "preprocess"])
def test_export_parity_per_output_kind(deploy: SimpleNamespace, name: str) -> None:
    path, report = deploy.exported(name)
    assert report.parity["passed"] and report.parity["agreement"] >= 0.999
    assert report.parity["max_abs_diff"] < 1e-4
    meta = read_onnx_file_meta(str(path))
    assert meta["output"] == ("labels" if name == "preprocess" else name)
    assert meta["preprocess"] == (name == "preprocess")
    assert meta["input_size"] == list(deploy.SIZE) and meta["opset"] == 17
    assert len(meta["classes"]) == meta["num_classes"] == 19 and len(meta["palette"]) == 19
    assert len(meta["source_sha256"]) == 64
    model = onnx.load(str(path))
    assert any(n.op_type == "LayerNormalization" for n in model.graph.node)  # real op, not decomposed
    assert model.opset_import[0].version == 17


def test_labels_graph_agrees_with_pytorch_through_onnxruntime(deploy: SimpleNamespace) -> None:
    import onnxruntime as ort

    path, _ = deploy.exported("labels")
    frames = synthetic_frames(3, deploy.SIZE, seed=21)
    model = load_model(deploy.tiny_checkpoint())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = normalize_batch(frames, deploy.SIZE, model.meta["mean"], model.meta["std"])
    labels = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(3)])
    assert labels.dtype == np.uint8 and labels.shape == (3, *deploy.SIZE)
    assert (labels == _torch_labels(deploy, frames)).mean() >= 0.999


def test_preprocess_graph_takes_uint8_bgr_frames(deploy: SimpleNamespace) -> None:
    path, report = deploy.exported("preprocess")
    assert report.input_shape == [1, deploy.SIZE[0], deploy.SIZE[1], 3] and report.input_dtype == "uint8"
    graph_input = onnx.load(str(path)).graph.input[0]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_dynamic_export_runs_at_two_sizes(deploy: SimpleNamespace) -> None:
    import onnxruntime as ort

    path, report = deploy.exported("dynamic")
    assert report.input_shape == ["batch", 3, "height", "width"]
    assert len(report.parity["sizes"]) == 2 and report.parity["passed"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = load_model(deploy.tiny_checkpoint())
    for size in [(64, 128), (96, 96)]:
        frames = synthetic_frames(2, size, seed=5)
        x = normalize_batch(frames, size, model.meta["mean"], model.meta["std"])
        labels = sess.run(None, {"input": x})[0]
        assert labels.shape == (2, *size)
        ref = reference_output(model, torch.from_numpy(x), "labels").numpy()
        assert (labels == ref).mean() >= 0.999


def test_fp16_keeps_normalisation_in_fp32(deploy: SimpleNamespace) -> None:
    path, report = deploy.exported("fp16")
    assert report.parity["passed"] and report.parity["agreement"] >= 0.995
    model = onnx.load(str(path))
    fp16_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert fp16_weights, "weights must be stored in FP16"
    ln_weights = {n.input[1] for n in model.graph.node if n.op_type == "LayerNormalization"}
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert all(types[w] == onnx.TensorProto.FLOAT for w in ln_weights if w in types)
    assert read_onnx_file_meta(str(path))["precision"] == "fp16"


def test_int8_export_reports_speed_and_agreement(deploy: SimpleNamespace) -> None:
    out = deploy.scratch("int8") / "tiny_int8.onnx"
    report = export_onnx(
        deploy.tiny_checkpoint(),
        out,
        ExportConfig(
            size=deploy.SIZE,
            precision="int8",
            calib_dir=deploy.calib_dir(),
            calib_images=4,
            parity_images=2,
            slim=False,
        ),
    )
    model = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    # attention products (MatMul of two activations) stay float: neither input is dequantised
    producers = {o: n for n in model.graph.node for o in n.output}
    weights = {t.name for t in model.graph.initializer}

    def is_weight(name: str) -> bool:
        node = producers.get(name)
        return name in weights or (
            node is not None and node.op_type == "DequantizeLinear" and node.input[0] in weights
        )

    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    attention = [n for n in matmuls if not any(is_weight(i) for i in n.input)]
    assert len(attention) == 8  # 4 stages x (q @ k, p @ v)
    assert all(producers[i].op_type != "DequantizeLinear" for n in attention for i in n.input)
    assert any(
        is_weight(n.input[1]) and producers.get(n.input[1]) is not None for n in matmuls
    )  # int8 linears
    assert read_onnx_file_meta(str(out))["precision"] == "int8"
    info = report.int8
    assert info is not None and info["fp32_ms"] > 0 and info["int8_ms"] > 0
    assert 0.5 < info["agreement_vs_fp32"] <= 1.0 and 0.0 < info["miou_vs_fp32"] <= 1.0
    assert report.parity["source"] == str(deploy.calib_dir())


def test_failed_parity_writes_nothing(deploy: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph that disagrees with PyTorch is refused and the output file never appears."""
    original = ExportSegmentor.forward

    bump = torch.zeros(1, 19, 1, 1)
    bump[:, 3] = 100.0  # class 3 everywhere: the graph no longer computes the model

    def broken(self: ExportSegmentor, x: torch.Tensor) -> torch.Tensor:
        return original(self, x) + bump

    monkeypatch.setattr(ExportSegmentor, "forward", broken)
    out = deploy.scratch("broken") / "broken.onnx"
    with pytest.raises(ExportError, match="parity check failed"):
        export_onnx(
            deploy.tiny_checkpoint(), out, ExportConfig(size=deploy.SIZE, parity_images=1, slim=False)
        )
    assert not out.exists() and not list(out.parent.glob(".broken.onnx*"))


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="--calib"):
        ExportConfig(precision="int8")
    with pytest.raises(ConfigError, match="opset"):
        ExportConfig(opset=13)
    with pytest.raises(ConfigError, match="labels, logits, probs"):
        ExportConfig(output="scores")


def test_cli_export_writes_json_and_reports_errors(
    deploy: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.onnx"
    code = main(
        [
            "export",
            str(deploy.tiny_checkpoint()),
            "--out",
            str(out),
            "--size",
            "64x128",
            "--no-slim",
            "--parity-images",
            "1",
            "--output",
            "logits",
            "--json",
            str(tmp_path / "r.json"),
            "--no-progress",
        ]
    )
    assert code == 0 and out.exists()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parity"]["passed"] and report["output"] == "logits"
    capsys.readouterr()
    assert main(["export", str(deploy.tiny_checkpoint()), "--out", str(out), "--int8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--calib" in err and len(err.splitlines()) == 1


def test_cli_eval_accepts_an_exported_onnx_and_matches_the_checkpoint(
    deploy: SimpleNamespace, tmp_path: Path
) -> None:
    from edgeseg.data.synthetic import render_dataset

    data = tmp_path / "synth"
    render_dataset(data, domains=["fog"], size=deploy.SIZE, splits={"val": 2})
    onnx_path, _ = deploy.exported("labels")
    args = ["--data", str(data), "--dataset", "synthetic", "--domain", "fog"]
    assert main(["eval", str(deploy.tiny_checkpoint()), *args, "--json", str(tmp_path / "pt.json")]) == 0
    assert main(["eval", str(onnx_path), *args, "--json", str(tmp_path / "onnx.json")]) == 0
    pt = json.loads((tmp_path / "pt.json").read_text())
    ox = json.loads((tmp_path / "onnx.json").read_text())
    assert ox["model"].endswith(".onnx")
    assert ox["miou"] == pytest.approx(pt["miou"], abs=0.02)
    assert main(["eval", str(onnx_path), *args, "--mode", "slide"]) == 2
