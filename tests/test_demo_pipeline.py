"""The threaded demo pipeline: live newest-wins, files in order, reconnects, errors and interrupts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import pytest

from edgeseg.demo.app import DemoConfig, run_demo
from edgeseg.demo.sources import SourceSpec
from edgeseg.errors import SourceError

LIVE = "rtsp://cam.local/stream"


class Opener:
    """Plays a script of (re)opens: a capture is handed out, None fails like an unreachable stream, and
    so does every open after the script is used up."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls = 0

    def __call__(self, spec: SourceSpec) -> Any:
        self.calls += 1
        capture = self.script.pop(0) if self.script else None
        if capture is None:
            raise SourceError(f"cannot open stream '{spec.label}'")
        return capture


def _config(tmp_path: Path, source: str = LIVE, **kw) -> DemoConfig:
    kw.setdefault("backoff_s", 0.001)
    return DemoConfig(
        model="fake.onnx", source=source, headless=True, stats_path=tmp_path / "stats.json", **kw
    )


def test_live_source_newest_frame_wins(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    # A fast camera (200 frames, no pacing) and a slow model: stale frames must be dropped, not queued.
    seg = demo_fakes.ColourSegmenter(delay_s=0.01)
    first = demo_fakes.ScriptedCapture(200)
    with pytest.raises(SourceError):
        run_demo(_config(tmp_path, max_retries=0), segmenter=seg, opener=Opener(first))
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_read"] == 200
    assert stats["dropped_before_inference"] > 100  # most frames arrived while the model was busy
    assert stats["frames_read"] == stats["frames_processed"] + stats["dropped_before_inference"]
    assert stats["frames_processed"] == stats["frames_rendered"] + stats["dropped_before_render"]
    assert seg.seen == sorted(seg.seen)  # never out of order
    assert seg.seen[-1] == 199  # the newest frame at the end of the stream was the one processed
    assert first.released


def test_file_source_processes_every_frame_in_order(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    seg = demo_fakes.ColourSegmenter(delay_s=0.002)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(15):
        cv2.imwrite(str(folder / f"{i:04d}.png"), demo_fakes.marked_frame(i))
    stats = run_demo(_config(tmp_path, source=str(folder)), segmenter=seg)
    assert seg.seen == list(range(15))
    assert (stats.frames_read, stats.frames_processed, stats.frames_rendered, stats.frames_dropped) == (
        15,
        15,
        15,
        0,
    )
    assert stats.ended_by == "end_of_stream"


def test_source_that_dies_gets_bounded_reconnects_then_clean_exit(
    demo_fakes: SimpleNamespace, tmp_path: Path
) -> None:
    opener = Opener(
        demo_fakes.ScriptedCapture(12, interval_s=0.002)
    )  # dies after 12 frames and never comes back
    events: list[str] = []
    record = tmp_path / "out.mp4"
    with pytest.raises(SourceError, match="3 reconnect attempts failed") as info:
        run_demo(
            _config(tmp_path, max_retries=3, record=record),
            segmenter=demo_fakes.ColourSegmenter(),
            opener=opener,
            on_event=events.append,
        )
    assert "\n" not in str(info.value)
    assert opener.calls == 1 + 3  # the first open plus exactly max_retries attempts
    stats = json.loads((tmp_path / "stats.json").read_text())  # the summary is still written
    assert stats["ended_by"] == "source_lost" and "reconnect" in stats["error"]
    assert stats["frames_read"] == 12 and stats["reconnect_attempts"] == 3 and stats["reconnects"] == 0
    assert stats["frames_rendered"] >= 1
    assert (
        len(demo_fakes.read_video(record)) == stats["frames_recorded"] == stats["frames_rendered"]
    )  # finalised
    assert sum("reconnecting" in e for e in events) == 3


def test_source_that_comes_back_is_resumed(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    # Drops after 10 frames, the first reopen fails, the second brings 10 more, then gone for good.
    opener = Opener(
        demo_fakes.ScriptedCapture(10, interval_s=0.002),
        None,
        demo_fakes.ScriptedCapture(10, start=10, interval_s=0.002),
    )
    seg = demo_fakes.ColourSegmenter()
    with pytest.raises(SourceError):
        run_demo(_config(tmp_path, max_retries=2), segmenter=seg, opener=opener)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_read"] == 20 and stats["reconnects"] == 1
    # 2 attempts to come back (1 failed, 1 succeeded), then 2 failed attempts after the final drop
    assert stats["reconnect_attempts"] == 4 and opener.calls == 5
    assert max(seg.seen) >= 10  # frames from after the reconnect were processed


def test_max_frames_on_a_live_source(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    stats = run_demo(
        _config(tmp_path, max_frames=5),
        segmenter=demo_fakes.ColourSegmenter(),
        opener=Opener(demo_fakes.ScriptedCapture(10_000, interval_s=0.001)),
    )
    assert stats.ended_by == "max_frames" and stats.frames_rendered == 5


def test_backend_crash_still_finalises_recording_and_stats(
    demo_fakes: SimpleNamespace, tmp_path: Path
) -> None:
    record = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="fake backend crashed"):
        run_demo(
            _config(tmp_path, record=record),
            segmenter=demo_fakes.ColourSegmenter(fail_after=4),
            opener=Opener(demo_fakes.ScriptedCapture(50, interval_s=0.002)),
        )
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["ended_by"] == "error" and stats["frames_processed"] == 4
    assert len(demo_fakes.read_video(record)) == stats["frames_rendered"] >= 1


def test_ctrl_c_stops_cleanly_and_finalises_the_recording(
    demo_fakes: SimpleNamespace, tmp_path: Path
) -> None:
    record = tmp_path / "out.mp4"

    def interrupt_after_six(stats) -> None:  # noqa: ANN001 - the user presses Ctrl-C mid-stream
        if stats.frames_rendered == 6:
            raise KeyboardInterrupt

    stats = run_demo(
        _config(tmp_path, record=record),
        segmenter=demo_fakes.ColourSegmenter(),
        opener=Opener(demo_fakes.ScriptedCapture(10_000, interval_s=0.001)),
        on_frame=interrupt_after_six,
    )
    assert stats.ended_by == "interrupted" and stats.frames_rendered == 6
    assert len(demo_fakes.read_video(record)) == 6
    assert json.loads((tmp_path / "stats.json").read_text())["ended_by"] == "interrupted"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


class FakeWindow:
    """Stands in for the cv2 window: records what is shown and plays keys from a script of
    (condition on the window, key) steps, one step at a time."""

    def __init__(self, steps: list) -> None:
        self.steps = steps
        self.shown: list[tuple[int, ...]] = []
        self.polls_while_paused = 0
        self.rendered_at_pause: int | None = None
        self.rendered_at_resume: int | None = None
        self.closed = False

    def show(self, image) -> None:  # noqa: ANN001
        self.shown.append(image.shape)

    def poll(self, ms: int = 1) -> int:
        if self.steps and self.steps[0][0](self):
            return self.steps.pop(0)[1]
        return -1

    def close(self) -> None:
        self.closed = True


def test_window_keys_switch_view_pause_and_quit(demo_fakes: SimpleNamespace, tmp_path: Path) -> None:
    from edgeseg.demo.pipeline import PipelineOptions, run_pipeline
    from edgeseg.demo.render import Renderer
    from edgeseg.demo.sources import parse_source
    from edgeseg.demo.stats import DemoStats

    stats = DemoStats()

    def paused_for_a_while(win: FakeWindow) -> bool:
        win.polls_while_paused += 1
        if win.rendered_at_pause is None:
            win.rendered_at_pause = stats.frames_rendered
        win.rendered_at_resume = stats.frames_rendered
        return win.polls_while_paused > 20

    window = FakeWindow(
        [
            (lambda w: len(w.shown) >= 3, ord("v")),  # overlay -> mask
            (lambda w: len(w.shown) >= 6, ord("v")),  # mask -> side-by-side
            (lambda w: len(w.shown) >= 9, ord(" ")),  # pause
            (paused_for_a_while, ord(" ")),  # ... 20 polls later, resume
            (lambda w: len(w.shown) >= 14, ord("q")),  # quit
        ]
    )
    renderer = Renderer(["dark", "bright", "blue"], [(0, 255, 0), (255, 0, 255), (255, 255, 0)])
    spec = parse_source(LIVE)
    opener = Opener(demo_fakes.ScriptedCapture(100_000, interval_s=0.002))
    result = run_pipeline(
        demo_fakes.ColourSegmenter(),
        spec,
        opener(spec),
        opener,
        renderer,
        stats,
        PipelineOptions(),
        window=window,
    )  # type: ignore[arg-type]
    assert result.error is None and stats.ended_by == "quit" and window.closed
    assert window.shown[0] == (64, 128, 3) and (64, 256, 3) in window.shown  # the view really switched
    assert renderer.view == "side-by-side"
    # while paused no new frame was rendered (the held frame is only redrawn for the key)
    assert window.polls_while_paused == 21 and window.rendered_at_pause == window.rendered_at_resume
    assert stats.frames_rendered > window.rendered_at_resume  # and rendering resumed afterwards
    assert not window.steps
