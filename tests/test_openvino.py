"""OpenVINO: `edgeseg export --for openvino` (.onnx and IR .xml, fp32 / bf16 / NNCF INT8, each checked through
OpenVINO) and the `openvino` runtime backend (bench / eval / demo run it through the backend table)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from edgeseg.checkpoint import load_model
from edgeseg.cli import main
from edgeseg.deploy.export.export_model import OpenVINOSegmentor, reference_output
from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx
from edgeseg.deploy.runtime.backends import backend_for, open_segmenter
from edgeseg.deploy.runtime.calibration import synthetic_frames
from edgeseg.deploy.runtime.onnx_meta import read_onnx_file_meta
from edgeseg.deploy.runtime.openvino_backend import compile_config
from edgeseg.deploy.runtime.preprocess import normalize_batch, uint8_batch
from edgeseg.errors import ConfigError, RuntimeBackendError

pytestmark = pytest.mark.slow


def _export(deploy: SimpleNamespace, name: str, **cfg: object) -> tuple[Path, object]:
    out = deploy.scratch("openvino") / name
    report = export_onnx(
        deploy.tiny_checkpoint(),
        out,
        ExportConfig(size=deploy.SIZE, parity_images=2, shaped_for="openvino", slim=False, **cfg),
    )  # type: ignore[arg-type]
    return out, report


def _torch_labels(deploy: SimpleNamespace, frames: list[np.ndarray]) -> np.ndarray:
    model = load_model(deploy.tiny_checkpoint())
    x = torch.from_numpy(normalize_batch(frames, deploy.SIZE, model.meta["mean"], model.meta["std"]))
    return reference_output(model, x, "labels").numpy()


def test_openvino_twin_is_the_model_itself(deploy: SimpleNamespace) -> None:
    model = load_model(deploy.tiny_checkpoint())
    frames = synthetic_frames(2, deploy.SIZE, seed=3)
    x = torch.from_numpy(normalize_batch(frames, deploy.SIZE, model.meta["mean"], model.meta["std"]))
    with torch.inference_mode():
        ref = model(x)
        assert torch.equal(OpenVINOSegmentor(model)(x), ref)
        pre = OpenVINOSegmentor(model, preprocess=True)(torch.from_numpy(uint8_batch(frames, deploy.SIZE)))
    assert torch.allclose(pre, ref, atol=1e-4)


@pytest.mark.parametrize("suffix", [".xml", ".onnx"])
def test_fp32_export_runs_in_openvino_and_agrees_with_pytorch(deploy: SimpleNamespace, suffix: str) -> None:
    path, report = _export(deploy, f"fp32{suffix}")
    assert report.parity["passed"] and report.parity["agreement"] >= 0.999  # type: ignore[attr-defined]
    assert report.parity["max_abs_diff"] < 1e-4  # type: ignore[attr-defined]
    if suffix == ".xml":
        assert path.with_suffix(".bin").is_file()
    else:
        assert read_onnx_file_meta(str(path))["shaped_for"] == "openvino"
        # the model's own order: no channels-last Sum node of the ONNX Runtime twin
        assert not any(n.op_type == "Sum" for n in onnx.load(str(path)).graph.node)
    assert backend_for(path, "openvino") == "openvino"
    frames = synthetic_frames(3, deploy.SIZE, seed=21)
    with open_segmenter(path, backend="openvino", threads=1) as seg:
        assert seg.meta["shaped_for"] == "openvino" and seg.meta["inference_precision"] == "f32"
        assert seg.input_size == deploy.SIZE and seg.output_kind == "labels"
        labels = np.stack(seg.predict(frames))
    assert labels.dtype == np.uint8 and (labels == _torch_labels(deploy, frames)).mean() >= 0.999


def test_labels_head_is_channels_first_and_dynamic_sizes_work(deploy: SimpleNamespace) -> None:
    """OpenVINO's Interpolate is slow on NHWC: its graphs resize and argmax the NCHW scores."""
    path, report = _export(deploy, "dynamic.onnx", dynamic=True)
    assert report.parity["passed"] and len(report.parity["sizes"]) == 2  # type: ignore[attr-defined]
    nodes = {n.output[0]: n for n in onnx.load(str(path)).graph.node}
    assert "labels_head/nhwc" not in nodes
    assert [a.i for a in nodes["labels_head/argmax"].attribute if a.name == "axis"] == [1]
    with open_segmenter(path, backend="openvino", size=(64, 96)) as seg:
        frames = synthetic_frames(1, (64, 96), seed=2)
        assert seg.input_size is None and seg.predict(frames)[0].shape == (64, 96)


def test_xml_files_open_with_auto_and_onnxruntime_graphs_run_in_openvino(deploy: SimpleNamespace) -> None:
    path, _ = _export(deploy, "auto.xml")
    assert backend_for(path) == "openvino"
    ort_graph, _ = deploy.exported("labels")  # an ONNX Runtime-shaped file runs too (slower, same labels)
    frames = synthetic_frames(2, deploy.SIZE, seed=5)
    with open_segmenter(ort_graph, backend="openvino") as seg:
        assert (np.stack(seg.predict(frames)) == _torch_labels(deploy, frames)).mean() >= 0.999


def test_bf16_export_records_and_runs_its_precision(deploy: SimpleNamespace) -> None:
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16: --bf16 exports are refused here (checked below)")
    path, report = _export(
        deploy, "bf16.xml", precision="bf16", min_agreement=0.9
    )  # random weights: near-tie labels
    assert report.precision == "bf16" and report.parity["passed"]  # type: ignore[attr-defined]
    with open_segmenter(path) as seg:
        assert seg.meta["precision"] == "bf16" and seg.meta["inference_precision"] == "bf16"


def test_precision_hint_follows_the_file_never_openvinos_default() -> None:
    assert compile_config("fp32", None, True)["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config("int8", 2, True) == {
        "INFERENCE_PRECISION_HINT": "bf16",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": 2,
    }
    assert compile_config("int8", None, False)["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config("bf16", None, True)["INFERENCE_PRECISION_HINT"] == "bf16"
    assert compile_config("bf16", None, False)["INFERENCE_PRECISION_HINT"] == "f32"


def test_int8_ir_is_quantised_checked_and_compared(deploy: SimpleNamespace) -> None:
    path, report = _export(deploy, "int8.xml", precision="int8", calib_dir=deploy.calib_dir(), calib_images=4)
    assert "FakeQuantize" in path.read_text()  # NNCF's quantisation nodes in the IR
    info = report.int8  # type: ignore[attr-defined]
    assert info is not None and info["runtime"] == "openvino" and info["fp32_ms"] > 0 and info["int8_ms"] > 0
    assert 0.5 < info["agreement_vs_fp32"] <= 1.0 and 0.0 < info["miou_vs_fp32"] <= 1.0
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    with open_segmenter(path) as seg:
        assert seg.meta["precision"] == "int8" and seg.meta["inference_precision"] == (
            "bf16" if bf16 else "f32"
        )
        assert seg.predict(synthetic_frames(1, deploy.SIZE))[0].shape == deploy.SIZE


def test_option_combinations_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="--for openvino"):
        ExportConfig(precision="bf16")
    with pytest.raises(ConfigError, match="--bf16"):
        ExportConfig(precision="fp16", shaped_for="openvino")
    with pytest.raises(ConfigError, match="onnxruntime, openvino"):
        ExportConfig(shaped_for="tflite")
    with pytest.raises(ConfigError, match="needs --for openvino"):
        ExportConfig().check_out(Path("m.xml"))
    with pytest.raises(ConfigError, match="model.xml"):
        ExportConfig(shaped_for="openvino", precision="int8", calib_dir=Path(".")).check_out(Path("m.onnx"))
    with pytest.raises(ConfigError, match="not 'm.engine'"):
        ExportConfig(shaped_for="openvino").check_out(Path("m.engine"))


def test_truncated_ir_is_one_line_error(deploy: SimpleNamespace, tmp_path: Path) -> None:
    path, _ = _export(deploy, "whole.xml")
    broken = tmp_path / "m.xml"
    broken.write_text(path.read_text()[:1000])
    with pytest.raises(RuntimeBackendError, match="cannot load"):
        open_segmenter(broken)
    lone = tmp_path / "lone.xml"
    lone.write_text(path.read_text())  # no .bin beside it
    with pytest.raises(RuntimeBackendError, match="cannot load"):
        open_segmenter(lone)


def test_cli_exports_ir_and_bench_runs_it(
    deploy: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.xml"
    code = main(
        [
            "export",
            str(deploy.tiny_checkpoint()),
            "--out",
            str(out),
            "--size",
            "64x128",
            "--for",
            "openvino",
            "--no-slim",
            "--parity-images",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0 and out.exists() and out.with_suffix(".bin").exists()
    capsys.readouterr()
    assert main(["bench", str(out), "--iters", "2", "--warmup", "1", "--threads", "1"]) == 0
    assert "openvino" in capsys.readouterr().out


def test_device_side_without_openvino_or_torch(run_without_torch, tmp_path: Path) -> None:
    """openvino is optional: without it the table still lists the row (missing), other backends work, and
    opening an IR says what to install in one line."""
    model = tmp_path / "m.xml"
    model.write_text("<net/>")
    code = f"""
class _NoOpenVINO(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("openvino is hidden in this test")
        return None
sys.meta_path.insert(0, _NoOpenVINO())
from edgeseg.deploy.runtime import backends, openvino_backend
from edgeseg.errors import RuntimeBackendError
assert "openvino" not in backends.available_backends() and "onnxruntime-cpu" in backends.available_backends()
assert "missing: pip install 'edgeseg[openvino]'" in backends.format_backends()
try:
    backends.open_segmenter({str(model)!r})
except RuntimeBackendError as exc:
    print("ERR", exc)
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert "ERR openvino is not installed: pip install 'edgeseg[openvino]'" in result.stdout
