"""`edgeseg demo` as a library call: open everything (failing early, with one clear line), run the pipeline,
write the stats, and re-raise what ended the run abnormally only after the recording and stats are safe."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.demo.pipeline import PipelineOptions, SegmenterLike, run_pipeline
from edgeseg.demo.render import VIEWS, Renderer, View
from edgeseg.demo.sinks import VideoRecorder, Window, check_display
from edgeseg.demo.sources import (
    Capture,
    SourceSpec,
    describe_environment,
    open_capture,
    parse_source,
    source_fps,
    source_frame_count,
)
from edgeseg.demo.stats import DemoStats
from edgeseg.errors import ConfigError, RuntimeBackendError, SourceError
from edgeseg.io_utils import write_json_atomic


@dataclass(frozen=True)
class DemoConfig:
    model: str
    source: str
    backend: str = "auto"
    size: tuple[int, int] | None = None
    alpha: float = 0.5
    view: View = "overlay"
    headless: bool = False
    record: Path | None = None
    max_frames: int | None = None
    stats_path: Path | None = None
    max_retries: int = 5
    backoff_s: float = 0.5

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"--alpha {self.alpha} must be between 0 (frame only) and 1 (mask only)")
        if self.view not in VIEWS:
            raise ConfigError(f"--view '{self.view}' is not one of {', '.join(VIEWS)}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError("--max-frames must be >= 1")
        if self.max_retries < 0:
            raise ConfigError("--retries must be >= 0")
        if not 0 <= self.backoff_s <= 60:  # also refuses nan/inf: a wait must end
            raise ConfigError(f"--retry-delay must be between 0 and 60 seconds, got {self.backoff_s}")


def load_segmenter(model: str, backend: str, size: tuple[int, int] | None) -> SegmenterLike:
    """open_segmenter from the runtime backend table, imported only now (it pulls in onnxruntime/TensorRT)."""
    from edgeseg.deploy.runtime.backends import open_segmenter

    return open_segmenter(model, backend, size)


def class_names_and_palette(meta: dict[str, Any]) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Classes and RGB palette from a Segmenter's metadata; numbered names when it carries none."""
    palette = [tuple(int(v) for v in colour) for colour in meta.get("palette") or []]
    classes = [str(c) for c in meta.get("classes") or []]
    if not classes:
        n = int(meta.get("num_classes") or len(palette) or 0)
        if n == 0:
            raise RuntimeBackendError(
                "the model's metadata names neither classes, num_classes nor a palette; "
                "re-export it with edgeseg"
            )
        classes = [f"class {i}" for i in range(n)]
    return classes, palette  # type: ignore[return-value]


def run_demo(
    config: DemoConfig,
    segmenter: SegmenterLike | None = None,
    opener: Callable[[SourceSpec], Capture] | None = None,
    on_frame: Callable[[DemoStats], None] | None = None,
    on_event: Callable[[str], None] | None = None,
    on_start: Callable[[int | None], None] | None = None,
    on_finish: Callable[[DemoStats], None] | None = None,
) -> DemoStats:
    """Run the demo; returns its stats. Raises EdgesegError for anything that stopped it abnormally (the
    recording and the stats file are written first). `segmenter` and `opener` are injectable for tests.
    `on_start(frame_count)` is called once the source is open (frame_count None for live sources);
    `on_finish(stats)` after every run that started, also one that then raises."""
    config.validate()
    spec = parse_source(config.source)  # a bad path fails here, before a model is loaded
    if not config.headless:
        check_display()
    owned = segmenter is None  # a segmenter we open, we also close
    if segmenter is None:
        segmenter = load_segmenter(config.model, config.backend, config.size)
    try:
        stats, error = _run(config, spec, segmenter, opener, on_frame, on_event, on_start)
    finally:
        if owned and hasattr(segmenter, "close"):
            segmenter.close()
    if on_finish is not None:
        on_finish(stats)
    if error is not None:
        raise error
    return stats


def _run(
    config: DemoConfig,
    spec: SourceSpec,
    segmenter: SegmenterLike,
    opener: Callable[[SourceSpec], Capture] | None,
    on_frame: Callable[[DemoStats], None] | None,
    on_event: Callable[[str], None] | None,
    on_start: Callable[[int | None], None] | None,
) -> tuple[DemoStats, BaseException | None]:
    classes, palette = class_names_and_palette(segmenter.meta)
    renderer = Renderer(classes, palette, alpha=config.alpha, view=config.view)
    recorder = VideoRecorder(config.record, fps=30.0) if config.record is not None else None
    opener = opener or open_capture  # looked up per call so tests can patch the module attribute
    capture = opener(spec)
    if recorder is not None:
        recorder.fps = source_fps(capture)  # play back at the source's rate (cameras: their nominal rate)
    stats = DemoStats(
        source=spec.label,
        source_kind=spec.kind,
        live=spec.live,
        backend=segmenter.backend,
        model=os.fspath(config.model),
        view=config.view,
    )
    stats.extra["environment"] = describe_environment()
    input_size = getattr(segmenter, "input_size", None)
    stats.extra["input_size"] = list(input_size) if input_size else None
    if on_start is not None:
        on_start(None if spec.live else source_frame_count(capture))
    try:
        window = None if config.headless else Window()
    except BaseException:
        capture.release()
        raise
    options = PipelineOptions(
        max_frames=config.max_frames, max_retries=config.max_retries, backoff_s=config.backoff_s
    )
    result = run_pipeline(
        segmenter,
        spec,
        capture,
        opener,
        renderer,
        stats,
        options,
        recorder=recorder,
        window=window,
        on_frame=on_frame,
        on_event=on_event,
    )
    if recorder is not None:
        stats.extra["recording"] = {
            "path": os.fspath(config.record),
            "frames": recorder.frames,
            "size_wh": list(recorder.size) if recorder.size else None,
            "fps": recorder.fps,
            "codec": recorder.fourcc,
        }
    error = result.error
    if error is None and stats.frames_rendered == 0 and config.max_frames != 0:
        error = SourceError(
            f"source '{spec.label}' gave no frames (an empty or unreadable video?); nothing was segmented"
        )
    if config.stats_path is not None:
        write_json_atomic(config.stats_path, stats.to_dict())
    return stats, error
