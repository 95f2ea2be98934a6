"""quickstart: config validation and the report a person reads (the end-to-end run is the README's command)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeseg.errors import ConfigError
from edgeseg.quickstart import QuickstartConfig, render_drive_video, to_markdown


def test_config_rejects_single_domain_and_source() -> None:
    with pytest.raises(ConfigError, match="at least two"):
        QuickstartConfig(domains=("city",))
    with pytest.raises(ConfigError, match="labelled domain"):
        QuickstartConfig(domains=("source", "city"))


def _report() -> dict:
    return {
        "domains": ["city", "night"],
        "merge_method": "bn",
        "input_size": [128, 256],
        "scores": [
            {
                "name": "source only (shared init)",
                "miou": {"city": 0.2, "night": 0.1},
                "harmonic_mean": 0.1333,
            },
            {"name": "merged (bn), PyTorch", "miou": {"city": 0.3, "night": None}, "harmonic_mean": None},
        ],
        "latency": [
            {
                "model": "merged.onnx",
                "backend": "onnxruntime-cpu",
                "input_size": [128, 256],
                "median_ms": 9.5,
                "p90_ms": 11.0,
                "cv": 0.05,
                "fps": 105.3,
                "gmacs": 0.014,
            }
        ],
        "bench_warnings": ["CV high"],
        "demo": {"frames_read": 48, "frames_processed": 48, "end_to_end_fps": 40.0},
        "artifacts": {
            "merged": "deploy/merged.safetensors",
            "onnx": ["deploy/merged.onnx"],
            "predictions": "predictions.png",
            "demo_video": "demo.mp4",
            "drive_video": "drive.mp4",
        },
        "timings_s": {"data_s": 1.0, "total_s": 5.0},
    }


def test_markdown_report_has_scores_latency_demo_and_pictures() -> None:
    md = to_markdown(_report())
    assert "| source only (shared init) | 20.0 | 10.0 | 13.3 |" in md
    assert "| merged (bn), PyTorch | 30.0 | n/a | n/a |" in md
    assert "| merged.onnx | onnxruntime-cpu | 128x256 | 9.50 | 11.00 | 5.0% | 105.3 | 0.014 |" in md
    assert "![predictions](predictions.png)" in md and "(demo.mp4)" in md
    assert "frames_processed=48" in md and "- CV high" in md


def test_drive_video_has_the_requested_frames(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    path = render_drive_video(tmp_path / "drive.mp4", ("city", "night"), frames=6, size=(64, 128), seed=0)
    frames = demo_fakes.read_video(path)
    assert len(frames) == 6 and frames[0].shape == (64, 128, 3)
    # the first half is 'city', the second 'night': night frames are much darker
    assert np.mean(frames[-1]) < np.mean(frames[0])
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_tiny_quickstart_end_to_end(tmp_path: Path) -> None:
    """The whole quickstart on a toy budget: every artefact the README promises is written."""
    import json

    from edgeseg.quickstart import run_quickstart

    cfg = QuickstartConfig(
        out=tmp_path / "qs",
        iters=10,
        bench_iters=5,
        demo_frames=6,
        threads=1,
        overrides=(
            "synthetic.train_images=6",
            "synthetic.val_images=2",
            "synthetic.size=[64,128]",
            "data.crop=[64,128]",
            "data.batch_size=2",
            "duda.inconsistency.images=2",
            "optim.warmup_iters=2",
            # toy budget: a tiny large model; the student keeps its shipped init
            "models.large=segformer_tiny",
            'models.large_init=""',
        ),
    )
    lines: list[str] = []
    report = run_quickstart(cfg, log=lines.append)
    out = tmp_path / "qs"
    for name in (
        "report.md",
        "report.json",
        "predictions.png",
        "demo.mp4",
        "drive.mp4",
        "bench.json",
        "deploy/merged.onnx",
        "deploy/merged_int8.onnx",
        "deploy/merged.safetensors",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text())["domains"] == ["city", "night"]
    names = [s["name"] for s in report["scores"]]
    assert names[:3] == [
        "source only (shared init)",
        "DUDA student adapted to city",
        "DUDA student adapted to night",
    ]
    assert all(0.0 <= s["miou"]["city"] <= 1.0 for s in report["scores"])
    assert report["demo"]["frames_processed"] == 6
    assert "[7/7]" in "\n".join(lines)


def test_parallel_students_report_a_failed_run_in_one_line(tmp_path: Path) -> None:
    from edgeseg.errors import EdgesegError
    from edgeseg.quickstart import _distill_parallel
    from edgeseg.uda.config import load_config

    bad = load_config(
        "synthetic",
        overrides=[
            f"data.source_root={tmp_path / 'nowhere'}",
            f"data.target_root={tmp_path / 'nowhere'}",
            "iters=2",
        ],
    )
    with pytest.raises(EdgesegError, match="distilling duda_city failed: error: .*nowhere"):
        _distill_parallel(
            {"city": (bad, tmp_path / "runs" / "duda_city")}, 2, log=lambda m: None, progress=None
        )
