"""export/device_check.sh's logic (edgeseg/deploy/trt/device_check.py) with TensorRT and the GPU faked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgeseg.deploy.trt.device_check import (
    VARIANTS,
    CheckConfig,
    Tools,
    engine_cases,
    main,
    parse_with_tensorrt,
    run_check,
    summarize_bench,
)


def _tools(
    calls: list[str],
    agreement: float = 1.0,
    fp16_flag: bool = True,
    parse_errors: list[str] | None = None,
    fail_build: str | None = None,
) -> Tools:
    def export(name: str, kwargs: dict[str, Any], out: Path) -> Path:
        calls.append(f"export {name}")
        out.write_bytes(b"onnx")
        return out

    def build(onnx_path: Path, precision: str, out: Path, size: tuple[int, int]) -> dict[str, Any]:
        calls.append(f"build {onnx_path.stem} {precision}")
        if fail_build and fail_build == f"{onnx_path.stem}_{precision}":
            raise RuntimeError("TensorRT failed to build the engine\nsecond line")
        return {"engine": str(out)}

    return Tools(
        versions=lambda: {"tensorrt": "10.3.0", "numpy": "1.26.4"},
        fp16_flag=lambda: fp16_flag,
        export=export,
        graph_problems=lambda p: {"8.6": [], "10.x": []},
        parse=lambda p: list(parse_errors or []),
        build=build,
        agreement=lambda e, o, s: agreement,
        bench=lambda e, o: {"engine_ms": 1.5, "onnx_ms": 9.0, "onnx_backend": "onnxruntime-cuda"},
    )


def _cfg(tmp_path: Path, **kw: Any) -> CheckConfig:
    return CheckConfig(
        work_dir=tmp_path / "work", results_dir=tmp_path / "results", size=(64, 128), tag="orin nano", **kw
    )


def test_engine_cases_follow_the_tensorrt_release() -> None:
    with_flag = {c.name for c in engine_cases(fp16_flag=True)}
    assert {"labels_fp32", "labels_fp16", "fp16_fp16", "int8_trt_int8", "dynamic_fp16"} <= with_flag
    without = {c.name for c in engine_cases(fp16_flag=False)}  # TensorRT 11: FP16 only from the FP16 ONNX
    assert "labels_fp16" not in without and "fp16_fp16" in without and "dynamic_fp32" in without


def test_run_check_exports_builds_compares_and_writes_reports(tmp_path: Path) -> None:
    calls: list[str] = []
    report = run_check(_cfg(tmp_path, checkpoint=Path("b0.safetensors")), _tools(calls), log=lambda _m: None)
    assert report["ok"] and set(report["onnx"]) == set(VARIANTS)
    assert [c for c in calls if c.startswith("export")] == [f"export {n}" for n in VARIANTS]
    assert report["engines"]["labels_fp16"]["agreement"] == {"64x128": 1.0, "32x64": 1.0}
    assert report["bench"]["labels_fp32"]["engine_ms"] == 1.5
    js = tmp_path / "results" / "device_check_orin-nano_trt10.3.0.json"
    md = js.with_suffix(".md")
    assert json.loads(js.read_text())["ok"] is True
    text = md.read_text()
    assert "| tensorrt | 10.3.0 |" in text and "| labels_fp16 | ok | 100.000% | 100.000% | 99.9% |" in text


def test_run_check_fails_below_the_bar_and_keeps_going(tmp_path: Path) -> None:
    calls: list[str] = []
    report = run_check(
        _cfg(tmp_path, checkpoint=Path("b0.safetensors")),
        _tools(calls, agreement=0.998, fail_build="labels_fp32"),
        log=lambda _m: None,
    )
    assert not report["ok"]
    assert report["engines"]["labels_fp32"] == {
        "onnx": "labels",
        "precision": "fp32",
        "ok": False,
        "error": "RuntimeError: TensorRT failed to build the engine",
    }
    assert not report["engines"]["labels_fp16"]["ok"]  # 99.8% < 99.9%
    assert report["engines"]["int8_trt_int8"]["ok"]  # INT8 agreement is reported, not gated
    assert "build fp16 fp16" in calls  # later cases still ran


def test_run_check_on_a_jetson_takes_onnx_files_from_elsewhere(tmp_path: Path) -> None:
    onnx_dir = tmp_path / "exported"
    onnx_dir.mkdir()
    for name in VARIANTS:
        if name != "logits":
            (onnx_dir / f"{name}.onnx").write_bytes(b"onnx")
    calls: list[str] = []
    report = run_check(_cfg(tmp_path, onnx_dir=onnx_dir), _tools(calls, parse_errors=[]), log=lambda _m: None)
    assert not any(c.startswith("export") for c in calls)
    assert "logits.onnx is missing" in report["onnx"]["logits"]["error"] and not report["ok"]
    assert report["onnx"]["labels"]["file"] == str(onnx_dir / "labels.onnx")


def test_parser_errors_fail_the_variant(tmp_path: Path) -> None:
    report = run_check(
        _cfg(tmp_path, checkpoint=Path("b0.safetensors")),
        _tools([], parse_errors=["Cast: unsupported type"]),
        log=lambda _m: None,
    )
    assert report["onnx"]["labels"]["parser_errors"] == ["Cast: unsupported type"] and not report["ok"]


def test_parse_with_a_fake_tensorrt(make_tensorrt: Callable[..., ModuleType], tmp_path: Path) -> None:

    assert parse_with_tensorrt(make_tensorrt("8.6.1"), tmp_path / "m.onnx") == []
    trt = make_tensorrt("10.3.0")

    class Failing(trt.OnnxParser):  # type: ignore[name-defined,misc]
        num_errors = 2

        def parse_from_file(self, path: str) -> bool:
            return False

        def get_error(self, i: int) -> str:
            return f"error {i}"

    trt.OnnxParser = Failing
    assert parse_with_tensorrt(trt, tmp_path / "m.onnx") == ["error 0", "error 1"]


def test_summarize_bench() -> None:
    results = {
        "results": [
            {"backend": "tensorrt", "latency_ms": {"median": 2.0}},
            {"backend": "onnxruntime-cuda", "latency_ms": {"median": 7.0}},
        ]
    }
    assert summarize_bench(results) == {"engine_ms": 2.0, "onnx_ms": 7.0, "onnx_backend": "onnxruntime-cuda"}


def test_main_without_tensorrt_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT installed")
    except ImportError:
        pass
    assert main(["--onnx-dir", str(tmp_path), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: tensorrt is not importable")
    assert main([]) == 2
    assert "exactly one of --checkpoint" in capsys.readouterr().err


def test_device_modules_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import edgeseg.deploy.trt.device_check, edgeseg.deploy.trt.plan, edgeseg.deploy.trt.support, "
        "edgeseg.deploy.trt.build, edgeseg.deploy.runtime.tensorrt_backend; assert 'torch' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0
