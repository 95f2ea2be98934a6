"""`edgeseg merge` / `edgeseg merge scan` end to end on tiny models and a tiny synthetic dataset, plus the
streaming safetensors writer."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edgeseg.checkpoint import load_state, save_model
from edgeseg.cli import main
from edgeseg.merge.io import SafetensorsStreamWriter, TensorInfo
from edgeseg.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one intra-op thread


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from edgeseg.data.synthetic import render_dataset

    root = tmp_path_factory.mktemp("synth")
    render_dataset(root, domains=["city", "night"], size=(64, 128), splits={"val": 2})
    return root


@pytest.fixture
def models(tmp_path) -> list[Path]:
    paths = []
    for i, name in enumerate(["city", "night"]):
        torch.manual_seed(i)
        paths.append(tmp_path / f"{name}.safetensors")
        save_model(create_model("segformer_tiny"), paths[-1])
    return paths


def test_stream_writer_round_trips_mixed_dtypes(tmp_path):
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.randn(7).to(torch.bfloat16),
        "n": torch.tensor(12),
        "e": torch.zeros(0, 4),
        "h": torch.randn(2, 2).half(),
        "m": torch.tensor([True, False, True]),
    }
    names = {
        torch.float32: "F32",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.float16: "F16",
        torch.bool: "BOOL",
    }
    plan = [(k, TensorInfo(names[v.dtype], tuple(v.shape))) for k, v in tensors.items()]
    path = tmp_path / "s.safetensors"
    with open(path, "wb") as f:
        writer = SafetensorsStreamWriter(f, plan, {"format": "edgeseg", "n": 3})
        for k, v in tensors.items():
            writer.write(k, v)
        writer.close()
    back = load_file(str(path))
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert header_len % 8 == 0


def test_stream_writer_refuses_off_plan_tensors():
    writer = SafetensorsStreamWriter(io.BytesIO(), [("a", TensorInfo("F32", (2,)))], {})
    with pytest.raises(RuntimeError, match="planned"):
        writer.write("a", torch.zeros(3))
    with pytest.raises(RuntimeError, match="not written"):
        writer.close()


def test_cli_merge_and_user_errors(tmp_path, models, capsys):
    out = tmp_path / "merged.safetensors"
    assert (
        main(
            [
                "merge",
                *map(str, models),
                "--out",
                str(out),
                "--method",
                "linear",
                "--weights",
                "3,1",
                "--no-progress",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "normalised" in captured.err and "merged 2 models (linear" in captured.out
    assert load_state(out)[1]["provenance"]["merge"]["weights"] == [0.75, 0.25]
    assert json.loads((tmp_path / "r.json").read_text())["merge"]["method"] == "linear"

    assert main(["merge", str(models[0]), "--out", str(tmp_path / "x.safetensors")]) != 0
    assert "at least 2" in capsys.readouterr().err
    assert (
        main(["merge", *map(str, models), "--out", str(tmp_path / "x.safetensors"), "--method", "mean"]) != 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown merge method 'mean'" in err[0]
    assert (
        main(["merge", *map(str, models), "--out", str(tmp_path / "x.safetensors"), "--weights", "1,nan"])
        != 0
    )
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_merge_with_evaluation_table(tmp_path, models, synth, capsys):
    out = tmp_path / "mh.safetensors"
    code = main(
        [
            "merge",
            *map(str, models),
            "--out",
            str(out),
            "--method",
            "backbone",
            "--eval-data",
            str(synth),
            "--domains",
            "city,night",
            "--no-progress",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "heads: city, night" in printed and "H-mean" in printed
    scores = json.loads((tmp_path / "r.json").read_text())["scores"]
    assert [s["name"] for s in scores] == ["city.safetensors", "night.safetensors", "mh.safetensors"]
    for s in scores:
        assert set(s["miou"]) == {"city", "night"} and 0.0 <= s["harmonic_mean"] <= 1.0


def test_cli_scan_writes_csv_json_and_plot(tmp_path, models, synth, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "scan"
    code = main(
        [
            "merge",
            "scan",
            *map(str, models),
            "--data",
            str(synth),
            "--domains",
            "city,night",
            "--out",
            str(out),
            "--steps",
            "3",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "best harmonic mean" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "scan.csv").open()))
    assert [r["lambda"] for r in rows] == ["0", "0.5", "1"]
    assert set(rows[0]) == {"lambda", "miou_city", "miou_night", "harmonic_mean"}
    assert (out / "scan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "scan.json").read_text())

    # the endpoints are exactly the inputs: lambda=1 scores as A, lambda=0 as B
    from edgeseg.merge.evaluation import domain_datasets, evaluate_checkpoints

    a, b = evaluate_checkpoints(models, domain_datasets(synth, ["city", "night"]))
    assert result["miou"]["city"][2] == pytest.approx(a.miou["city"], abs=1e-9)
    assert result["miou"]["night"][0] == pytest.approx(b.miou["night"], abs=1e-9)
    assert [p.name for p in out.iterdir()] and not any(p.name.startswith(".scan-") for p in out.iterdir())


def test_cli_split_multihead_and_load_model_points_to_it(tmp_path, models, capsys):
    from edgeseg.checkpoint import load_model
    from edgeseg.errors import CheckpointError

    mh = tmp_path / "mh.safetensors"
    assert main(["merge", *map(str, models), "--out", str(mh), "--method", "backbone", "--no-progress"]) == 0
    with pytest.raises(CheckpointError, match="merge split"):
        load_model(mh)
    assert main(["merge", "split", str(mh), "--out", str(tmp_path / "per")]) == 0
    outs = sorted((tmp_path / "per").glob("*.safetensors"))
    assert [p.name for p in outs] == ["mh_city.safetensors", "mh_night.safetensors"]
    city = load_model(outs[0])
    assert city.num_classes == 19
    assert "mh_night.safetensors" in capsys.readouterr().out
