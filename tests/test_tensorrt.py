"""TensorRT engine building and loading: the pure logic without a GPU, real builds under @pytest.mark.gpu."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.deploy.calibration import CalibrationBatcher, list_images, synthetic_frames
from edgeseg.deploy.engine_meta import (
    DeviceFacts,
    compatibility_problems,
    make_sidecar,
    read_sidecar,
    require_compatible,
    sidecar_path,
)
from edgeseg.deploy.targets import list_targets, load_target, parse_target
from edgeseg.deploy.tensorrt import fp32_layer_indices, precision_plan, profile_shapes
from edgeseg.errors import ConfigError, DatasetError, RuntimeBackendError

ORIN = DeviceFacts("8.6.2.3", "Orin", "8.7")


def _sidecar(facts: DeviceFacts = ORIN) -> dict:
    return make_sidecar(facts, precision="fp16", inputs={"input": {"opt": [1, 3, 64, 128]}},
                        outputs={"labels": {"shape": [1, 64, 128]}}, model_meta={"output": "labels"},
                        onnx_path="/x/model.onnx", onnx_sha256="0" * 64, dla_core=None, edgeseg_version="0.1.0")


# -- optimisation profiles -----------------------------------------------------------------------------

def test_static_graph_profile_is_fixed() -> None:
    shapes = profile_shapes([1, 3, 512, 1024], nhwc=False)
    assert shapes.static and shapes.opt == (1, 3, 512, 1024)
    with pytest.raises(ConfigError, match="fixed 512x1024"):
        profile_shapes([1, 3, 512, 1024], nhwc=False, size=(256, 512))
    with pytest.raises(ConfigError, match="--dynamic"):
        profile_shapes([1, 3, 512, 1024], nhwc=False, max_size=(1024, 2048))


def test_dynamic_graph_profile_min_opt_max() -> None:
    shapes = profile_shapes(["batch", 3, "height", "width"], nhwc=False, batch=2, size=(512, 1024),
                            min_size=(256, 512), max_size=(1024, 2048))
    assert shapes.min == (1, 3, 256, 512) and shapes.opt == (2, 3, 512, 1024) and shapes.max == (2, 3, 1024, 2048)
    nhwc = profile_shapes([-1, -1, -1, 3], nhwc=True, size=(64, 128))
    assert nhwc.min == nhwc.opt == nhwc.max == (1, 64, 128, 3)
    with pytest.raises(ConfigError, match="give --size"):
        profile_shapes([-1, 3, -1, -1], nhwc=False)
    with pytest.raises(ConfigError, match="min-size <= size <= max-size"):
        profile_shapes([-1, 3, -1, -1], nhwc=False, size=(256, 256), max_size=(128, 512))
    with pytest.raises(ConfigError, match="both fixed or both dynamic"):
        profile_shapes([1, 3, -1, 128], nhwc=False, size=(64, 128))


# -- precision rules -----------------------------------------------------------------------------------

def test_layernorm_pinned_to_fp32_only_before_tensorrt_10() -> None:
    types = ["CONVOLUTION", "NORMALIZATION", "MATRIX_MULTIPLY", "SOFTMAX", "NORMALIZATION"]
    assert fp32_layer_indices("8.6.1", fp16=True, layer_types=types) == [1, 4]
    assert fp32_layer_indices("8.6.1", fp16=False, layer_types=types) == []
    assert fp32_layer_indices("10.3.0", fp16=True, layer_types=types) == []


def test_precision_plan() -> None:
    assert precision_plan("fp16", "fp32", None) == {"fp16": True, "int8": False, "calibrate": False}
    assert precision_plan("int8", "fp32", Path("calib")) == {"fp16": True, "int8": True, "calibrate": True}
    # a Q/DQ graph carries its own scales: INT8 without a calibrator
    assert precision_plan("int8", "int8", None)["calibrate"] is False
    with pytest.raises(ConfigError, match="--calib"):
        precision_plan("int8", "fp32", None)
    with pytest.raises(ConfigError, match="build it with --int8"):
        precision_plan("fp16", "int8", None)


# -- calibration batches -------------------------------------------------------------------------------

def test_calibration_batcher_full_batches_in_order(tmp_path: Path) -> None:
    import cv2

    for i, frame in enumerate(synthetic_frames(7, (20, 30), seed=2)):
        frame[0, 0] = (i, i, i)  # tag each image
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), frame)
    (tmp_path / "notes.txt").write_text("not an image")
    files = list_images(tmp_path)
    assert len(files) == 7
    batcher = CalibrationBatcher(files, batch_size=3, prepare=lambda frames: np.stack(frames))
    batches = list(batcher)
    assert len(batcher) == len(batches) == 2  # the partial last batch is dropped
    assert [b.shape for b in batches] == [(3, 20, 30, 3)] * 2
    assert [int(b[k, 0, 0, 0]) for b in batches for k in range(3)] == [0, 1, 2, 3, 4, 5]
    assert len(list_images(tmp_path, limit=3)) == 3
    with pytest.raises(DatasetError, match="batch size 8"):
        CalibrationBatcher(files, batch_size=8, prepare=np.stack)
    with pytest.raises(DatasetError, match="no images"):
        list_images(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


# -- sidecar compatibility -----------------------------------------------------------------------------

def test_sidecar_compatibility_rules() -> None:
    side = _sidecar()
    assert compatibility_problems(side, DeviceFacts("8.6.2.9", "Orin (other module)", "8.7")) == []
    problems = compatibility_problems(side, DeviceFacts("10.3.0", "Orin", "8.7"))
    assert len(problems) == 1 and "TensorRT 8.6.2.3" in problems[0]
    problems = compatibility_problems(side, DeviceFacts("8.6.2.3", "NVIDIA GeForce RTX 4090", "8.9"))
    assert len(problems) == 1 and "sm_87" in problems[0] and "sm_89" in problems[0]


def test_foreign_engine_is_refused_with_rebuild_advice(tmp_path: Path) -> None:
    engine = tmp_path / "student.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(RuntimeBackendError, match="no sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps(_sidecar()))
    side = read_sidecar(engine)
    with pytest.raises(RuntimeBackendError) as info:
        require_compatible(engine, side, DeviceFacts("10.3.0", "NVIDIA RTX A2000", "8.6"))
    message = str(info.value)
    assert "\n" not in message and "rebuild it on this device" in message
    assert "edgeseg build-engine model.onnx --out student.engine" in message
    require_compatible(engine, side, ORIN)  # same TensorRT and SM: fine
    sidecar_path(engine).write_text("{broken")
    with pytest.raises(RuntimeBackendError, match="rebuild"):
        read_sidecar(engine)


# -- target profiles -----------------------------------------------------------------------------------

def test_shipped_target_profiles_parse() -> None:
    assert {"orin-nano", "orin-agx", "xavier-nx", "x86-cuda", "cpu"} <= set(list_targets())
    nano = load_target("orin-nano")
    assert nano.runtime == "tensorrt" and nano.precision == "fp16" and nano.dla_core is None
    cpu = load_target("cpu")
    assert cpu.runtime == "onnxruntime-cpu" and cpu.precision == "int8"
    with pytest.raises(ConfigError, match="unknown target"):
        load_target("pdp-11")


def test_target_profile_validation(tmp_path: Path) -> None:
    good = {"description": "d", "runtime": "tensorrt", "input_size": "256x512", "precision": "int8",
            "dla_core": 1, "calib_images": 32}
    profile = parse_target("t", good, "t.toml")
    assert profile.input_size == (256, 512) and profile.dla_core == 1 and profile.calib_images == 32
    with pytest.raises(ConfigError, match="unknown key"):
        parse_target("t", {**good, "dla": 0}, "t.toml")
    with pytest.raises(ConfigError, match="HxW"):
        parse_target("t", {**good, "input_size": "big"}, "t.toml")
    path = tmp_path / "mine.toml"
    path.write_text('description = "x"\nruntime = "onnxruntime-cpu"\ninput_size = "64x128"\nprecision = "fp32"\n')
    assert load_target(str(path)).input_size == (64, 128)


def test_build_engine_cli_without_tensorrt_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgeseg.cli import main

    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT installed")
    except ImportError:
        pass
    from deploy_helpers import exported

    onnx_path, _ = exported("labels")
    code = main(["build-engine", str(onnx_path), "--out", str(tmp_path / "m.engine"), "--fp16", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "TensorRT is not installed" in err[0]
    assert not (tmp_path / "m.engine").exists()
    assert main(["build-engine", str(onnx_path), "--out", str(tmp_path / "m.engine"), "--target", "cpu"]) == 2
    assert "use `edgeseg export --target cpu`" in capsys.readouterr().err


@pytest.mark.gpu
def test_build_and_run_engine_on_gpu(tmp_path: Path) -> None:  # pragma: no cover - needs an NVIDIA GPU
    """On a machine with TensorRT: build FP32/FP16 engines from a tiny export and compare with ONNX Runtime."""
    pytest.importorskip("tensorrt")
    from deploy_helpers import exported

    from edgeseg.deploy.runtimes import open_segmenter
    from edgeseg.deploy.tensorrt import EngineConfig, build_engine

    onnx_path, _ = exported("labels")
    frames = synthetic_frames(2, (64, 128), seed=3)
    ref = open_segmenter(onnx_path, backend="onnxruntime-cpu").predict(frames)
    from deploy_helpers import calib_dir

    for precision, bar in (("fp32", 0.999), ("fp16", 0.99), ("int8", 0.9)):
        engine = tmp_path / f"m_{precision}.engine"
        report = build_engine(onnx_path, engine, EngineConfig(precision=precision, timing_cache=tmp_path / "t.cache",
                                                              calib_dir=calib_dir(), calib_images=4))
        assert sidecar_path(engine).exists() and report.engine_bytes > 0
        seg = open_segmenter(engine)
        assert seg.backend == "tensorrt"
        for a, b in zip(seg.predict(frames), ref, strict=True):
            assert (a == b).mean() >= bar
        seg.close()
    assert (tmp_path / "m_int8.engine.calib").exists()  # calibration cache written for rebuilds


def test_targets_env_var_adds_profile_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-board.toml").write_text('description = "mine"\nruntime = "tensorrt"\n'
                                            'input_size = "256x512"\nprecision = "fp16"\n')
    monkeypatch.setenv("EDGESEG_TARGETS", str(tmp_path))
    assert "my-board" in list_targets()
    assert load_target("my-board").input_size == (256, 512)
