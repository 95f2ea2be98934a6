"""`edgeseg demo` end to end: a synthetic clip through the CLI, headless, with --record and --stats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import edgeseg.demo.app as demo_app
from edgeseg.cli import main
from edgeseg.demo.sources import opencv_has_gstreamer, opencv_has_gui

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_model(demo_fakes: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stand in for open_segmenter: the demo gets a colour-threshold segmenter whatever --model says."""
    seg = demo_fakes.ColourSegmenter()
    calls: list[tuple] = []

    def load(model: str, backend: str, size: tuple[int, int] | None) -> Any:
        calls.append((model, backend, size))
        return seg

    monkeypatch.setattr(demo_app, "load_segmenter", load)
    seg.load_calls = calls  # type: ignore[attr-defined]
    return seg


def _blend(grey: int, rgb: tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    return (1 - alpha) * grey + alpha * np.array(rgb[::-1], dtype=float)


def test_demo_headless_records_overlay_and_writes_stats(
    demo_fakes: SimpleNamespace,
    tmp_path: Path,
    fake_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # left half grey 110, right half grey 150; wide enough that the HUD and legend sit side by side on top
    clip = demo_fakes.write_clip(tmp_path / "clip.mp4", frames=20, h=96, w=256)
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code = main(
        [
            "demo",
            "--model",
            "m.onnx",
            "--source",
            str(clip),
            "--headless",
            "--size",
            "96x256",
            "--record",
            str(out),
            "--stats",
            str(stats_path),
        ]
    )
    assert code == 0
    assert fake_model.load_calls == [("m.onnx", "auto", (96, 256))]  # type: ignore[attr-defined]
    assert fake_model.closed  # the demo opened the model, so it closed it
    assert "20 frames read" in capsys.readouterr().out

    frames = demo_fakes.read_video(out)
    assert len(frames) == 20 and all(f.shape == (96, 256, 3) for f in frames)
    # Bottom half (clear of the HUD and legend): the inputs differ by 40 grey levels, but their labels
    # differ (110 -> class 0 green, 150 -> class 1 magenta), so the overlays must differ by far more,
    # and each must be the 50/50 blend of the frame and its class colour (mp4v is lossy: tolerance).
    for frame in frames:
        left = frame[48:, 8:120].reshape(-1, 3).mean(axis=0)
        right = frame[48:, 136:248].reshape(-1, 3).mean(axis=0)
        assert np.abs(left - _blend(110, demo_fakes.PALETTE_RGB[0])).max() < 12
        assert np.abs(right - _blend(150, demo_fakes.PALETTE_RGB[1])).max() < 12
        assert np.abs(left - right).max() > 100

    stats = json.loads(stats_path.read_text())
    assert (stats["frames_read"], stats["frames_processed"], stats["frames_rendered"]) == (20, 20, 20)
    assert stats["frames_dropped"] == 0 and stats["frames_recorded"] == 20
    assert stats["ended_by"] == "end_of_stream" and stats["error"] is None
    assert stats["end_to_end_fps"] > 0 and stats["inference_fps"] > 0
    for key in ("end_to_end", "inference"):
        lat = stats["latency_ms"][key]
        assert lat["samples"] == 20 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert stats["recording"]["size_wh"] == [256, 96]


def test_side_by_side_mask_and_max_frames(
    demo_fakes: SimpleNamespace, tmp_path: Path, fake_model: Any
) -> None:
    clip = demo_fakes.write_clip(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "sbs.mp4"
    assert (
        main(
            [
                "demo",
                "-m",
                "m.onnx",
                "-s",
                str(clip),
                "--headless",
                "--view",
                "side-by-side",
                "--record",
                str(out),
                "--max-frames",
                "7",
            ]
        )
        == 0
    )
    frames = demo_fakes.read_video(out)
    assert len(frames) == 7 and frames[0].shape == (64, 256, 3)
    right_half = frames[3][48:, 128 + 72 : 128 + 120].reshape(-1, 3).mean(axis=0)  # the pure mask
    assert np.abs(right_half - np.array(demo_fakes.PALETTE_RGB[1][::-1])).max() < 12
    assert len(fake_model.seen) <= 7 + 2 * 4  # reading stopped near max-frames (queues hold a few)


def test_json_flag_prints_stats(
    demo_fakes: SimpleNamespace,
    tmp_path: Path,
    fake_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = demo_fakes.write_clip(tmp_path / "clip.mp4", frames=5)
    assert main(["demo", "-m", "m.onnx", "-s", str(clip), "--headless", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_rendered"] == 5


def test_bad_source_is_one_line_and_non_zero(
    tmp_path: Path,
    fake_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "-m", "m.onnx", "-s", str(tmp_path / "missing.mp4"), "--headless"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "missing.mp4" in err and "does not exist" in err
    assert fake_model.load_calls == []  # type: ignore[attr-defined]  # failed before loading the model


def test_undecodable_video_is_one_line(
    tmp_path: Path,
    fake_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    code = main(["demo", "-m", "m.onnx", "-s", str(bad), "--headless"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "cannot open video" in err


def test_bad_options_are_one_line(
    demo_fakes: SimpleNamespace,
    tmp_path: Path,
    fake_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = demo_fakes.write_clip(tmp_path / "clip.mp4", frames=2)
    for extra in (["--alpha", "1.5"], ["--view", "heatmap"], ["--record", str(tmp_path / "o.gif")]):
        assert main(["demo", "-m", "m.onnx", "-s", str(clip), "--headless", *extra]) != 0
        assert capsys.readouterr().err.count("\n") == 1, extra


@pytest.mark.skipif(opencv_has_gui(), reason="this OpenCV has a GUI")
def test_window_without_gui_opencv_says_use_headless(
    demo_fakes: SimpleNamespace,
    tmp_path: Path,
    fake_model: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = demo_fakes.write_clip(tmp_path / "clip.mp4", frames=2)
    assert main(["demo", "-m", "m.onnx", "-s", str(clip)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--headless" in err and "opencv-python" in err


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_csi_without_gstreamer_is_one_line(fake_model: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "-m", "m.onnx", "-s", "csi://0", "--headless"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GStreamer" in err


def test_dead_stream_exits_non_zero_after_summary(
    demo_fakes: SimpleNamespace,
    tmp_path: Path,
    fake_model: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    opens: list[int] = []

    def opener(spec):  # noqa: ANN001, ANN202
        opens.append(1)
        if len(opens) > 1:
            from edgeseg.errors import SourceError

            raise SourceError("unreachable")
        return demo_fakes.ScriptedCapture(8, interval_s=0.002)

    monkeypatch.setattr(demo_app, "open_capture", opener)
    code = main(
        [
            "demo",
            "-m",
            "m.onnx",
            "-s",
            "rtsp://cam.local/live",
            "--headless",
            "--retries",
            "2",
            "--retry-delay",
            "0.001",
            "--stats",
            str(tmp_path / "s.json"),
        ]
    )
    captured = capsys.readouterr()
    assert code != 0 and len(opens) == 3
    assert "8 frames read" in captured.out  # the summary
    assert captured.err.count("reconnecting") == 2 and captured.err.strip().splitlines()[-1].startswith(
        "error:"
    )
    assert json.loads((tmp_path / "s.json").read_text())["ended_by"] == "source_lost"


def test_demo_runs_without_torch(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    """The device side has no torch: import the demo and run it on an image folder with torch blocked."""
    script = f"""
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import importlib.util
import cv2
from pathlib import Path
spec = importlib.util.spec_from_file_location('demo_fakes', {str(demo_fakes.source_file)!r})
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
ColourSegmenter, marked_frame = fakes.ColourSegmenter, fakes.marked_frame
from edgeseg.demo import DemoConfig, run_demo
import edgeseg.cli.demo
folder = Path({str(tmp_path)!r}) / 'frames'
folder.mkdir()
for i in range(3):
    cv2.imwrite(str(folder / f'{{i}}.png'), marked_frame(i))
stats = run_demo(DemoConfig(model='m.onnx', source=str(folder), headless=True), segmenter=ColourSegmenter())
assert stats.frames_rendered == 3, stats
print('ok')
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_demo_with_a_real_onnx_model(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    """No fakes: an exported ONNX model through edgeseg.deploy.runtime.backends, a clip through the CLI."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")

    from edgeseg.deploy.runtime.backends import open_segmenter

    model = demo_fakes.export_tiny_onnx(tmp_path / "tiny.onnx", 128, 256)
    clip = demo_fakes.write_clip(tmp_path / "clip.mp4", frames=12, h=128, w=256)
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    assert (
        main(
            [
                "demo",
                "-m",
                str(model),
                "-s",
                str(clip),
                "--headless",
                "--backend",
                "onnxruntime-cpu",
                "--view",
                "mask",
                "--record",
                str(out),
                "--stats",
                str(stats_path),
            ]
        )
        == 0
    )
    stats = json.loads(stats_path.read_text())
    assert stats["backend"] == "onnxruntime-cpu" and stats["input_size"] == [128, 256]
    assert stats["frames_processed"] == stats["frames_recorded"] == 12
    recorded = demo_fakes.read_video(out)
    assert len(recorded) == 12
    # The mask view shows the model's labels in the model's palette: map each recorded pixel back to the
    # nearest palette colour and compare with the labels the model gives for that frame (mp4v is lossy
    # and a random-weight model's label map is ragged, so agreement is high but not total).
    seg = open_segmenter(model, "onnxruntime-cpu")
    source = demo_fakes.read_video(clip)
    palette_bgr = np.array([c[::-1] for c in seg.meta["palette"]], dtype=int)
    for i in (0, 5, 11):
        labels = seg.predict([source[i]])[0]
        pixels = recorded[i][64:].reshape(-1, 1, 3).astype(int)  # rows clear of the HUD and legend
        nearest = np.abs(pixels - palette_bgr[None]).sum(axis=2).argmin(axis=1)
        agreement = (nearest == labels[64:].ravel()).mean()
        assert agreement > 0.8, (i, agreement)
