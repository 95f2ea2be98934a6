"""`edgeseg bench` end to end on a real ONNX model: JSON schema, plot, errors, and no torch on the device side."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeseg.bench.report import RESULT_KEYS, SCHEMA_VERSION, validate_report
from edgeseg.cli import main

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--warmup", "1", "--iters", "3", "--no-progress"]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """segformer_tiny exported with dynamic H/W (torch is fine in fixtures; the device side never sees it)."""
    import onnx
    import torch

    from edgeseg.deploy.runtime import onnx_meta
    from edgeseg.models.registry import create_model

    path = tmp_path_factory.mktemp("bench") / "tiny.onnx"
    model = create_model("segformer_tiny").eval()
    torch.onnx.export(
        model,
        torch.zeros(1, 3, 64, 128),
        str(path),
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamo=False,
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}},
    )
    # the metadata `edgeseg export` writes, so the runtimes open it like any exported model
    proto = onnx.load(str(path))
    meta = {
        "format": onnx_meta.FORMAT,
        "format_version": onnx_meta.FORMAT_VERSION,
        "num_classes": 19,
        "classes": [f"class{i}" for i in range(19)],
        "palette": [[i, i, i] for i in range(19)],
        "mean": [123.675, 116.28, 103.53],
        "std": [58.395, 57.12, 57.375],
        "output": "logits",
        "preprocess": False,
        "input_size": None,
        "batch": None,
    }
    onnx.helper.set_model_props(proto, onnx_meta.encode(meta))
    onnx.save(proto, str(path))
    return path


def test_bench_json_schema_and_values(
    onnx_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    rc = main(
        [
            "bench",
            str(onnx_model),
            "--size",
            "64x128",
            "--size",
            "32x64",
            "--batch",
            "2",
            *ARGS,
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "latency" in stdout and "tiny" in stdout and "64x128" in stdout
    report = json.loads(out.read_text())
    assert validate_report(report) == [] and report["schema_version"] == SCHEMA_VERSION
    assert report["command"][:3] == ["edgeseg", "bench", str(onnx_model)]
    assert [r["input_size"] for r in report["results"]] == [[64, 128], [32, 64]]
    r = report["results"][0]
    assert set(r) == set(RESULT_KEYS)
    assert r["backend"].startswith("onnxruntime") and r["batch"] == 2 and r["iterations"] == 3
    assert r["latency_ms"]["n"] == 3 and r["fps"] == pytest.approx(2000 / r["latency_ms"]["mean"])
    stages = r["stages_ms"]
    assert stages["infer"]["median"] <= r["latency_ms"]["max"]
    # counted at the size that was fed: a quarter of the pixels -> about a quarter of the MACs
    g64, g32 = r["graph"]["gmacs"], report["results"][1]["graph"]["gmacs"]
    assert g64 > 0 and r["graph"]["uncounted_nodes"] == [] and 3.0 < g64 / g32 < 4.5
    assert r["graph"]["gflops"] == pytest.approx(2 * g64, rel=1e-3)
    assert r["model_file_mb"] == pytest.approx(onnx_model.stat().st_size / 2**20, abs=1e-3)
    assert report["device"]["libraries"]["onnxruntime"] is not None


def test_bench_infer_mode_and_plot(onnx_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot, out = tmp_path / "lat.png", tmp_path / "r.json"
    rc = main(
        [
            "bench",
            str(onnx_model),
            "--size",
            "32x64",
            "--size",
            "64x128",
            "--mode",
            "infer",
            *ARGS,
            "--json",
            str(out),
            "--plot",
            str(plot),
        ]
    )
    assert rc == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(out.read_text())
    assert all(r["mode"] == "infer" and r["stages_ms"] is None for r in report["results"])


def test_progress_bar_path_runs(onnx_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    rc = main(
        [
            "bench",
            str(onnx_model),
            "--size",
            "32x64",
            "--warmup-s",
            "0.05",
            "--duration-s",
            "0.2",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["settings"]["measure"] == {"seconds": 0.2} and report["results"][0]["iterations"] >= 2
    assert report["command"][-4:] == ["--warmup-s", "0.05", "--duration-s", "0.2"]


def test_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", str(tmp_path / "nope.onnx"), *ARGS])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "not found" in err and "nope.onnx" in err


def test_corrupt_model_is_one_line(
    tmp_path: Path, onnx_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx_model.read_bytes()[:500])  # truncated download
    rc = main(["bench", str(broken), *ARGS])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "broken.onnx" in err and "Traceback" not in err


def test_conflicting_options_and_missing_matplotlib(
    onnx_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["bench", str(onnx_model), "--warmup", "1", "--warmup-s", "1"]) != 0
    assert "not both" in capsys.readouterr().err
    assert main(["bench", str(onnx_model), "--iters", "1"]) != 0
    assert "--iters must be >= 2" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    rc = main(["bench", str(onnx_model), *ARGS, "--plot", str(tmp_path / "p.png")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "pip install matplotlib" in err
    assert not (tmp_path / "p.png").exists()


def test_bench_runs_with_torch_hidden(onnx_model: Path, tmp_path: Path) -> None:
    """The device side: `edgeseg bench model.onnx --json out.json` with torch unimportable."""
    out = tmp_path / "out.json"
    script = textwrap.dedent(f"""
        import sys

        sys.modules["torch"] = None  # as if not installed: `import torch` fails, find_spec("torch") is None
        from edgeseg.cli import main
        rc = main(["bench", {str(onnx_model)!r}, "--json", {str(out)!r}, "--size", "32x64", *{ARGS!r}])
        leaked = [m for m, v in sys.modules.items() if m.split(".")[0] == "torch" and v is not None]
        assert not leaked, leaked
        sys.exit(rc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert validate_report(report) == [] and report["results"][0]["graph"]["gmacs"] > 0
