"""`edgeseg merge-export`: merge -> evaluate -> export -> report, end to end on tiny models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from edgeseg.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def students(deploy: SimpleNamespace) -> tuple[Path, Path]:
    """Two 'domain students' sharing an init (as DUDA produces them): the tiny model, perturbed twice."""
    from edgeseg.checkpoint import load_model, save_model

    folder = deploy.scratch("students")
    paths = []
    for i, domain in enumerate(("city", "night")):
        model = load_model(deploy.tiny_checkpoint())
        torch.manual_seed(100 + i)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        path = folder / f"{domain}.safetensors"
        save_model(model, path, provenance={"target_domain": domain})
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def merge_data(deploy: SimpleNamespace) -> Path:
    from edgeseg.data.synthetic import render_dataset

    root = deploy.scratch("merge-synth")
    render_dataset(root, ["city", "night"], size=(64, 128), splits={"val": 2}, seed=0)
    return root


def test_merge_export_bn_with_evaluation(
    merge_data: Path, students: tuple[Path, Path], deploy: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    out = deploy.scratch("merge-export-bn")
    a, b = students
    code = main(
        [
            "merge-export",
            str(a),
            str(b),
            "--method",
            "bn",
            "--out",
            str(out),
            "--size",
            "64x128",
            "--eval-data",
            str(merge_data),
            "--domains",
            "city,night",
            "--parity-images",
            "1",
            "--engine",
            "--no-slim",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert (out / "merged.safetensors").exists() and (out / "merged.onnx").exists()
    assert report["exports"]["merged.onnx"]["parity"]["passed"]
    names = [s["name"] for s in report["evaluation"]["scores"]]
    assert names == [
        "city.safetensors",
        "night.safetensors",
        "merged.safetensors",
        "merged.onnx (FP32, ONNX Runtime)",
    ]
    for s in report["evaluation"]["scores"]:
        assert set(s["miou"]) == {"city", "night"} and s["harmonic_mean"] is not None
    torch_merged, onnx_merged = report["evaluation"]["scores"][2:]
    for d in ("city", "night"):  # the deployable model scores what the PyTorch model scores
        assert abs(torch_merged["miou"][d] - onnx_merged["miou"][d]) < 0.01
    md = (out / "report.md").read_text()
    assert "| merged.onnx | fp32 |" in md and "H-mean" in md
    if importlib.util.find_spec("tensorrt") is None:
        assert any("TensorRT is not installed" in n for n in report["notes"])


def test_merge_export_backbone_exports_one_graph_per_head(
    students: tuple[Path, Path], deploy: SimpleNamespace
) -> None:
    out = deploy.scratch("merge-export-backbone")
    a, b = students
    assert (
        main(
            [
                "merge-export",
                str(a),
                str(b),
                "--method",
                "backbone",
                "--out",
                str(out),
                "--size",
                "64x128",
                "--param",
                "heads=day,dark",
                "--parity-images",
                "1",
                "--no-slim",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())  # the method parameter reached the merge
    assert report["merge"]["params"] == {"heads": ["day", "dark"]}
    assert sorted(Path(p).name for p in report["artifacts"]["onnx"]) == [
        "merged_dark.onnx",
        "merged_day.onnx",
    ]
    assert all(e["parity"]["passed"] for e in report["exports"].values())


def test_merge_export_option_errors(
    students: tuple[Path, Path], deploy: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = students
    assert main(["merge-export", str(a), str(b), "--out", str(deploy.scratch("x")), "--domains", "city"]) == 2
    assert "--eval-data" in capsys.readouterr().err
    assert main(["merge-export", str(a), str(b), "--out", str(deploy.scratch("x")), "--int8"]) == 2
    assert "--calib" in capsys.readouterr().err


def test_merge_export_bad_input_creates_no_output_folder(
    students: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = students
    out = tmp_path / "deploy"
    assert main(["merge-export", str(a), str(tmp_path / "missing.safetensors"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()
