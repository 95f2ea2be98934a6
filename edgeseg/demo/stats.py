"""Demo statistics: counters, a bounded latency window, and the JSON / one-line summaries written at exit."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Percentiles cover the most recent frames only, so a demo left running for days uses bounded memory.
LATENCY_WINDOW = 10_000


class LatencyWindow:
    """The last `maxlen` latencies in seconds; summaries in milliseconds."""

    def __init__(self, maxlen: int = LATENCY_WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=maxlen)
        self.count = 0
        self.total_s = 0.0

    def add(self, seconds: float) -> None:
        self._values.append(seconds)
        self.count += 1
        self.total_s += seconds

    def summary_ms(self) -> dict[str, float] | None:
        if not self._values:
            return None
        ms = np.asarray(self._values, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return {
            "mean": round(float(ms.mean()), 3),
            "p50": round(float(p50), 3),
            "p90": round(float(p90), 3),
            "p99": round(float(p99), 3),
            "max": round(float(ms.max()), 3),
            "samples": int(ms.size),
        }


class RateMeter:
    """Exponentially smoothed events per second (the FPS shown on screen)."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self._last: float | None = None
        self._interval: float | None = None

    def tick(self, now: float) -> None:
        if self._last is not None:
            dt = max(now - self._last, 1e-9)
            self._interval = (
                dt
                if self._interval is None
                else (self.smoothing * self._interval + (1 - self.smoothing) * dt)
            )
        self._last = now

    @property
    def rate(self) -> float:
        return 0.0 if not self._interval else 1.0 / self._interval


@dataclass
class DemoStats:
    """Everything counted during one run. Capture and inference threads bump counters under `lock`."""

    source: str = ""
    source_kind: str = ""
    live: bool = False
    backend: str = ""
    model: str = ""
    view: str = ""
    frames_read: int = 0
    frames_processed: int = 0
    frames_rendered: int = 0
    dropped_before_inference: int = 0
    dropped_before_render: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0
    frames_recorded: int = 0
    ended_by: str = ""
    error: str | None = None
    t_start: float | None = None
    t_first_frame: float | None = None
    t_last_render: float | None = None
    t_end: float | None = None
    inference: LatencyWindow = field(default_factory=LatencyWindow)
    end_to_end: LatencyWindow = field(default_factory=LatencyWindow)
    render: LatencyWindow = field(default_factory=LatencyWindow)
    extra: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def frames_dropped(self) -> int:
        return self.dropped_before_inference + self.dropped_before_render

    @property
    def end_to_end_fps(self) -> float:
        """Rendered frames per second of streaming (first frame read -> last frame rendered)."""
        if self.t_first_frame is None or self.t_last_render is None or self.frames_rendered < 2:
            return 0.0
        span = self.t_last_render - self.t_first_frame
        return self.frames_rendered / span if span > 0 else 0.0

    @property
    def inference_fps(self) -> float:
        """What inference alone sustains: processed frames / time spent inside predict()."""
        return self.inference.count / self.inference.total_s if self.inference.total_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        wall = (self.t_end - self.t_start) if self.t_end is not None and self.t_start is not None else None
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "live": self.live,
            "model": self.model,
            "backend": self.backend,
            "view": self.view,
            "ended_by": self.ended_by,
            "error": self.error,
            "frames_read": self.frames_read,
            "frames_processed": self.frames_processed,
            "frames_rendered": self.frames_rendered,
            "frames_dropped": self.frames_dropped,
            "dropped_before_inference": self.dropped_before_inference,
            "dropped_before_render": self.dropped_before_render,
            "frames_recorded": self.frames_recorded,
            "reconnects": self.reconnects,
            "reconnect_attempts": self.reconnect_attempts,
            "wall_s": None if wall is None else round(wall, 4),
            "end_to_end_fps": round(self.end_to_end_fps, 3),
            "inference_fps": round(self.inference_fps, 3),
            "latency_ms": {
                "end_to_end": self.end_to_end.summary_ms(),
                "inference": self.inference.summary_ms(),
                "render": self.render.summary_ms(),
            },
            "latency_window_frames": LATENCY_WINDOW,
            **self.extra,
        }


def summary_line(stats: DemoStats) -> str:
    """One human line for the terminal at exit."""
    e2e = stats.end_to_end.summary_ms()
    inf = stats.inference.summary_ms()
    latency = ""
    if e2e and inf:
        latency = f"; latency p50 {e2e['p50']:.1f} ms end-to-end, {inf['p50']:.1f} ms inference"
    ended = stats.ended_by.replace("_", " ")
    return (
        f"demo ({ended}): {stats.frames_read} frames read, {stats.frames_processed} processed, "
        f"{stats.frames_rendered} rendered, {stats.frames_dropped} dropped; "
        f"{stats.end_to_end_fps:.1f} FPS end-to-end, {stats.inference_fps:.1f} FPS inference{latency}"
    )
