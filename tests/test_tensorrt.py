"""TensorRT engine building and loading: the pure logic without a GPU, real builds under @pytest.mark.gpu."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from edgeseg.deploy.runtime.calibration import CalibrationBatcher, list_images, synthetic_frames
from edgeseg.deploy.targets import list_targets, load_target, parse_target
from edgeseg.deploy.trt.build import profile_shapes
from edgeseg.deploy.trt.engine_meta import (
    DeviceFacts,
    compatibility_problems,
    make_sidecar,
    read_sidecar,
    require_compatible,
    sidecar_path,
)
from edgeseg.deploy.trt.plan import TensorRTFeatures, build_plan, check_dla
from edgeseg.errors import ConfigError, DatasetError, ExportError, RuntimeBackendError

ORIN = DeviceFacts("8.6.2.3", "Orin", "8.7")


def _sidecar(facts: DeviceFacts = ORIN) -> dict:
    return make_sidecar(
        facts,
        precision="fp16",
        inputs={"input": {"opt": [1, 3, 64, 128]}},
        outputs={"labels": {"shape": [1, 64, 128]}},
        model_meta={"output": "labels"},
        onnx_path="/x/model.onnx",
        onnx_sha256="0" * 64,
        dla_core=None,
        edgeseg_version="0.1.0",
    )


# -- optimisation profiles -----------------------------------------------------------------------------


def test_static_graph_profile_is_fixed() -> None:
    shapes = profile_shapes([1, 3, 512, 1024], nhwc=False)
    assert shapes.static and shapes.opt == (1, 3, 512, 1024)
    with pytest.raises(ConfigError, match="fixed 512x1024"):
        profile_shapes([1, 3, 512, 1024], nhwc=False, size=(256, 512))
    with pytest.raises(ConfigError, match="--dynamic"):
        profile_shapes([1, 3, 512, 1024], nhwc=False, max_size=(1024, 2048))


def test_dynamic_graph_profile_min_opt_max() -> None:
    shapes = profile_shapes(
        ["batch", 3, "height", "width"],
        nhwc=False,
        batch=2,
        size=(512, 1024),
        min_size=(256, 512),
        max_size=(1024, 2048),
    )
    assert (
        shapes.min == (1, 3, 256, 512)
        and shapes.opt == (2, 3, 512, 1024)
        and shapes.max == (2, 3, 1024, 2048)
    )
    nhwc = profile_shapes([-1, -1, -1, 3], nhwc=True, size=(64, 128))
    assert nhwc.min == nhwc.opt == nhwc.max == (1, 64, 128, 3)
    with pytest.raises(ConfigError, match="give --size"):
        profile_shapes([-1, 3, -1, -1], nhwc=False)
    with pytest.raises(ConfigError, match="min-size <= size <= max-size"):
        profile_shapes([-1, 3, -1, -1], nhwc=False, size=(256, 256), max_size=(128, 512))
    with pytest.raises(ConfigError, match="both fixed or both dynamic"):
        profile_shapes([1, 3, -1, 128], nhwc=False, size=(64, 128))


# -- precision rules -----------------------------------------------------------------------------------

TRT86 = TensorRTFeatures("8.6.2.3", fp16_flag=True, calibrator=True, explicit_batch_flag=True)
TRT10 = TensorRTFeatures("10.3.0.26", fp16_flag=True, calibrator=True, explicit_batch_flag=True)
TRT11 = TensorRTFeatures("11.4.0.106", fp16_flag=False, calibrator=False, explicit_batch_flag=False)


def test_features_read_from_the_module(make_tensorrt: Callable[..., ModuleType]) -> None:

    assert TensorRTFeatures.of(make_tensorrt("8.6.1")) == TensorRTFeatures("8.6.1", True, True, True)
    assert TensorRTFeatures.of(make_tensorrt("11.4.0")) == TensorRTFeatures("11.4.0", False, False, False)


def test_build_plan_per_tensorrt_release() -> None:
    plan = build_plan("fp16", "fp32", TRT86, calib_dir=None, qdq_problems=[])
    assert (
        plan.builder_flags == ("FP16",)
        and plan.network_flags == ("EXPLICIT_BATCH",)
        and not plan.strongly_typed
    )
    plan = build_plan("int8", "fp32", TRT10, calib_dir=Path("calib"), qdq_problems=[])
    assert plan.builder_flags == ("FP16", "INT8") and plan.network_flags == () and plan.calibrate
    # a TensorRT Q/DQ graph carries its scales: INT8 without a calibrator
    assert not build_plan("int8", "int8", TRT10, calib_dir=None, qdq_problems=[]).calibrate
    # TensorRT 11: strongly typed, no precision flags; the ONNX types decide
    plan = build_plan("fp16", "fp16", TRT11, calib_dir=None, qdq_problems=[], dla_core=0)
    assert plan.strongly_typed and plan.builder_flags == ("GPU_FALLBACK",) and plan.network_flags == ()
    assert build_plan("int8", "int8", TRT11, calib_dir=None, qdq_problems=[]).strongly_typed
    assert build_plan("fp32", "fp32", TRT11, calib_dir=None, qdq_problems=[]).builder_flags == ()


@pytest.mark.parametrize(
    ("args", "features", "match"),
    [
        (("int8", "fp32"), TRT10, "--calib DIR"),
        (("fp16", "int8"), TRT10, "build it with --int8"),
        (("fp32", "fp16"), TRT10, "FP16 weights"),
        (("fp16", "fp32"), TRT11, "no FP16 builder flag.*edgeseg export CKPT --out model_fp16.onnx --fp16"),
        (("int8", "fp32"), TRT11, "no INT8 calibrator.*--int8-for tensorrt"),
    ],
)
def test_build_plan_refusals_say_what_to_run(
    args: tuple[str, str], features: TensorRTFeatures, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        build_plan(*args, features, calib_dir=None, qdq_problems=[])
    assert "\n" not in str(info.value)


def test_build_plan_refuses_onnxruntime_int8_and_fp32_dla() -> None:
    with pytest.raises(ExportError, match="quantised for ONNX Runtime.*--int8-for tensorrt"):
        build_plan("int8", "int8", TRT10, calib_dir=None, qdq_problems=["x: UINT8 zero point"])
    with pytest.raises(ConfigError, match="DLA cores run FP16 or INT8"):
        build_plan("fp32", "fp32", TRT10, calib_dir=None, qdq_problems=[], dla_core=0)


def test_check_dla() -> None:
    check_dla(None, 0)
    check_dla(1, 2)
    with pytest.raises(ConfigError, match="this device has no DLA cores"):
        check_dla(0, 0)
    with pytest.raises(ConfigError, match="2 DLA core.*--dla 2 does not exist"):
        check_dla(2, 2)


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
    assert {"orin-nano", "orin-agx", "x86-cuda", "cpu"} <= set(list_targets())
    assert "xavier-nx" not in list_targets()  # JetPack 5 (Python 3.8, TensorRT 8.5) is not supported
    nano = load_target("orin-nano")
    assert nano.runtime == "tensorrt" and nano.precision == "fp16" and nano.dla_core is None
    cpu = load_target("cpu")
    assert cpu.runtime == "onnxruntime-cpu" and cpu.precision == "int8"
    with pytest.raises(ConfigError, match="unknown target"):
        load_target("pdp-11")


def test_target_profile_validation(tmp_path: Path) -> None:
    good = {
        "description": "d",
        "runtime": "tensorrt",
        "input_size": "256x512",
        "precision": "int8",
        "dla_core": 1,
        "calib_images": 32,
    }
    profile = parse_target("t", good, "t.toml")
    assert profile.input_size == (256, 512) and profile.dla_core == 1 and profile.calib_images == 32
    with pytest.raises(ConfigError, match="unknown key"):
        parse_target("t", {**good, "dla": 0}, "t.toml")
    with pytest.raises(ConfigError, match="HxW"):
        parse_target("t", {**good, "input_size": "big"}, "t.toml")
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "x"\nruntime = "onnxruntime-cpu"\ninput_size = "64x128"\nprecision = "fp32"\n'
    )
    assert load_target(str(path)).input_size == (64, 128)


def test_build_engine_cli_without_tensorrt_is_one_line(
    deploy: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeseg.cli import main

    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT installed")
    except ImportError:
        pass

    onnx_path, _ = deploy.exported("labels")
    code = main(
        ["build-engine", str(onnx_path), "--out", str(tmp_path / "m.engine"), "--fp16", "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "TensorRT is not installed" in err[0]
    assert not (tmp_path / "m.engine").exists()
    assert main(["build-engine", str(onnx_path), "--out", str(tmp_path / "m.engine"), "--target", "cpu"]) == 2
    assert "use `edgeseg export --target cpu`" in capsys.readouterr().err


@pytest.mark.gpu
def test_build_and_run_engine_on_gpu(
    deploy: SimpleNamespace, tmp_path: Path
) -> None:  # pragma: no cover - needs an NVIDIA GPU
    """On a machine with TensorRT (8.6 / 10.x / 11.x): build FP32 / FP16 / INT8 engines from tiny exports and
    compare their labels with ONNX Runtime on the same graph."""
    trt = pytest.importorskip("tensorrt")

    from edgeseg.deploy.runtime.backends import open_segmenter
    from edgeseg.deploy.trt.build import EngineConfig, build_engine

    frames = synthetic_frames(2, (64, 128), seed=3)
    cases = [
        ("labels", deploy.exported("labels")[0], "fp32", 0.999),
        ("fp16", deploy.exported("fp16")[0], "fp16", 0.99),
        ("int8_trt", deploy.exported_int8("tensorrt")[0], "int8", 0.9),
    ]
    if TensorRTFeatures.of(trt).calibrator:
        cases.append(("labels_calibrated", deploy.exported("labels")[0], "int8", 0.9))
    for name, onnx_path, precision, bar in cases:
        ref = open_segmenter(onnx_path, backend="onnxruntime-cpu").predict(frames)
        engine = tmp_path / f"{name}.engine"
        report = build_engine(
            onnx_path,
            engine,
            EngineConfig(
                precision=precision,
                timing_cache=tmp_path / "t.cache",
                calib_dir=deploy.calib_dir(),
                calib_images=4,
            ),
        )
        assert sidecar_path(engine).exists() and report.engine_bytes > 0
        seg = open_segmenter(engine)
        assert seg.backend == "tensorrt"
        for a, b in zip(seg.predict(frames), ref, strict=True):
            assert (a == b).mean() >= bar, name
        seg.close()
    if TensorRTFeatures.of(trt).calibrator:
        assert (
            tmp_path / "labels_calibrated.engine.calib"
        ).exists()  # calibration cache written for rebuilds


def test_targets_env_var_adds_profile_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-board.toml").write_text(
        'description = "mine"\nruntime = "tensorrt"\ninput_size = "256x512"\nprecision = "fp16"\n'
    )
    monkeypatch.setenv("EDGESEG_TARGETS", str(tmp_path))
    assert "my-board" in list_targets()
    assert load_target("my-board").input_size == (256, 512)


# -- build_engine against a faked TensorRT module (8.6 / 10.x / 11.x API surface) ---------------------------


def _build_cli(onnx_path: Path, out: Path, *flags: str) -> list[str]:
    from edgeseg.cli import main

    code = main(["build-engine", str(onnx_path), "--out", str(out), "--no-progress", *flags])
    return [str(code)]


@pytest.mark.parametrize(
    ("version", "flags", "network_flags"),
    [
        ("8.6.2.3", ["FP16"], 1),  # EXPLICIT_BATCH = bit 0
        ("10.3.0.26", ["FP16"], 0),
    ],
)
def test_fake_build_uses_flags_before_11_and_pins_no_layer(
    fake_tensorrt: Callable[..., ModuleType],
    deploy: SimpleNamespace,
    tmp_path: Path,
    version: str,
    flags: list[str],
    network_flags: int,
) -> None:
    from edgeseg.deploy.trt.build import EngineConfig, build_engine

    trt = fake_tensorrt(version)
    onnx_path, _ = deploy.exported("labels")
    cache = tmp_path / "timing.cache"
    report = build_engine(
        onnx_path, tmp_path / "m.engine", EngineConfig(precision="fp16", timing_cache=cache)
    )
    assert trt.calls["flags"] == flags and trt.calls["network_flags"] == network_flags
    assert trt.calls["layer_precision"] == 0  # the 8.6/10 parser already runs LayerNorm in FP32
    assert report.plan["strongly_typed"] is False and cache.read_bytes() == b"timing"
    side = read_sidecar(tmp_path / "m.engine")
    assert side["build"]["builder_flags"] == flags and side["tensorrt_version"] == version


def test_fake_tensorrt_11_builds_an_fp16_onnx_strongly_typed(
    fake_tensorrt: Callable[..., ModuleType],
    deploy: SimpleNamespace,
    tmp_path: Path,
) -> None:
    from edgeseg.deploy.trt.build import EngineConfig, build_engine

    trt = fake_tensorrt("11.4.0.106")
    report = build_engine(deploy.exported("fp16")[0], tmp_path / "m.engine", EngineConfig(precision="fp16"))
    assert report.plan["strongly_typed"] and trt.calls["flags"] == [] and trt.calls["network_flags"] == 0
    int8_path, _ = exported_int8_tensorrt(deploy)
    report = build_engine(int8_path, tmp_path / "q.engine", EngineConfig(precision="int8"))
    assert report.plan == {
        "builder_flags": [],
        "network_flags": [],
        "calibrated": False,
        "strongly_typed": True,
    }


def exported_int8_tensorrt(deploy: SimpleNamespace):  # noqa: ANN201 - (Path, ExportReport)

    return deploy.exported_int8("tensorrt")


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr ends with exactly one `error:` line and carries no traceback (progress lines may precede it)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


def test_build_engine_cli_refuses_onnxruntime_int8_graph(
    fake_tensorrt: Callable[..., ModuleType],
    deploy: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:

    fake_tensorrt("10.3.0")
    onnx_path, _ = deploy.exported_int8("onnxruntime")
    assert _build_cli(onnx_path, tmp_path / "q.engine", "--int8") == ["2"]
    line = _one_error_line(capsys)
    assert "quantised for ONNX Runtime" in line and "edgeseg export" in line and "--int8-for tensorrt" in line
    assert not (tmp_path / "q.engine").exists()


def test_build_engine_cli_on_tensorrt_without_fp16_flag(
    fake_tensorrt: Callable[..., ModuleType],
    deploy: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:

    fake_tensorrt("11.4.0")
    assert _build_cli(deploy.exported("labels")[0], tmp_path / "m.engine", "--fp16") == ["2"]
    line = _one_error_line(capsys)
    assert "no FP16 builder flag" in line and "--fp16" in line and "edgeseg export" in line


def test_build_engine_cli_dla_on_a_device_without_dla(
    fake_tensorrt: Callable[..., ModuleType],
    deploy: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:

    fake_tensorrt("10.3.0", num_dla_cores=0)
    assert _build_cli(deploy.exported("labels")[0], tmp_path / "m.engine", "--fp16", "--dla", "0") == ["2"]
    assert "this device has no DLA cores" in _one_error_line(capsys)


def test_build_engine_refuses_a_foreign_timing_cache(
    fake_tensorrt: Callable[..., ModuleType],
    deploy: SimpleNamespace,
    tmp_path: Path,
) -> None:
    from edgeseg.deploy.trt.build import EngineConfig, build_engine

    fake_tensorrt("10.3.0", timing_cache_fits=False)
    cache = tmp_path / "other_gpu.cache"
    cache.write_bytes(b"from another GPU")
    with pytest.raises(ExportError, match="does not fit this GPU.*delete it"):
        build_engine(
            deploy.exported("labels")[0],
            tmp_path / "m.engine",
            EngineConfig(precision="fp16", timing_cache=cache),
        )
    assert not (tmp_path / "m.engine").exists()


def test_runtime_sets_the_dla_core_from_the_sidecar(make_tensorrt: Callable[..., ModuleType]) -> None:
    from edgeseg.deploy.runtime.tensorrt_backend import set_dla_core

    runtime = make_tensorrt("10.3.0", num_dla_cores=2).Runtime(None)
    set_dla_core(runtime, None, Path("m.engine"))
    assert runtime.DLA_core == -1
    set_dla_core(runtime, 1, Path("m.engine"))
    assert runtime.DLA_core == 1
    with pytest.raises(RuntimeBackendError, match="built for DLA core 1, this device has 0"):
        set_dla_core(make_tensorrt("10.3.0", num_dla_cores=0).Runtime(None), 1, Path("m.engine"))


def test_export_cli_int8_flavour_is_validated(
    deploy: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeseg.cli import main

    code = main(
        [
            "export",
            str(deploy.tiny_checkpoint()),
            "--out",
            str(tmp_path / "q.onnx"),
            "--int8",
            "--int8-for",
            "trt",
            "--calib",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 2 and "--int8-for must be one of onnxruntime, tensorrt" in _one_error_line(capsys)
    assert not (tmp_path / "q.onnx").exists()


def test_gpu_detection_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('conftest', 'tests/conftest.py'); "
        "conftest = importlib.util.module_from_spec(spec); spec.loader.exec_module(conftest); "
        "conftest._has_gpu(); assert 'torch' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[1]
    assert (
        subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, timeout=120).returncode
        == 0
    )


def test_target_precedence_is_one_rule_flag_then_profile_then_default() -> None:
    from edgeseg.deploy.targets import DEFAULTS, EXPORT_CALIB_IMAGES, TargetProfile, setting

    profile = TargetProfile(
        name="t",
        description="",
        runtime="tensorrt",
        input_size=(256, 512),
        precision="fp16",
        calib_images=100,
        batch=2,
    )
    assert setting("calib_images", 8, profile) == 8  # an explicit flag wins
    assert setting("calib_images", None, profile, EXPORT_CALIB_IMAGES) == 100  # then the profile
    assert setting("calib_images", None, None, EXPORT_CALIB_IMAGES) == EXPORT_CALIB_IMAGES  # then the default
    assert setting("calib_images", None, None) == DEFAULTS["calib_images"]
    assert setting("input_size", None, profile) == (256, 512) and setting("batch", None, None) == 1
    assert setting("dla_core", 0, None) == 0  # a flag of 0 is a value, not "unset"
