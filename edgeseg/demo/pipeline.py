"""The demo pipeline: three stages that overlap, joined by bounded queues.

    capture thread ──FrameQueue──> inference thread ──FrameQueue──> main thread: render -> record / window

- Live sources (cameras, streams): both queues hold one item and drop the oldest, so the newest frame
  always wins and latency stays one frame deep however slow the model is. Drops are counted.
- Files and folders: the queues block (back-pressure), so every frame is processed, in order.
- The main thread renders, records and owns the window: GUI toolkits want the main thread, and it is
  where Ctrl-C (KeyboardInterrupt) and SIGTERM land, so shutdown is always orderly: stop the workers,
  finalise the recording, report.
- A live source that stops delivering frames is reopened with exponential back-off; after
  `max_retries` failed attempts in a row the run ends with `ended_by == "source_lost"`.

numpy, OpenCV and the runtimes release the GIL in their heavy calls, so the stages really overlap.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgeseg.demo.queues import Empty, FrameQueue, QueueClosed
from edgeseg.demo.render import Renderer, hud_lines, key_action, next_view
from edgeseg.demo.sinks import VideoRecorder, Window
from edgeseg.demo.sources import Capture, SourceSpec
from edgeseg.demo.stats import DemoStats, RateMeter
from edgeseg.errors import SourceError


class SegmenterLike(Protocol):
    """The part of edgeseg.deploy.runtime.segmenter.Segmenter the demo uses (the demo closes what it opens)."""

    backend: str
    meta: dict

    def predict(self, frames: list[np.ndarray]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class PipelineOptions:
    max_frames: int | None = None
    max_retries: int = 5  # reconnect attempts in a row before a live source counts as lost
    backoff_s: float = 0.5  # first reconnect delay; doubles per failed attempt ...
    backoff_max_s: float = 8.0  # ... up to this
    file_queue_size: int = 4  # frames buffered between stages for files (memory bound)
    join_timeout_s: float = 10.0  # how long shutdown waits for a worker stuck in a driver call


@dataclass
class Frame:
    index: int
    image: np.ndarray
    t_read: float


@dataclass
class Result:
    frame: Frame
    labels: np.ndarray
    infer_s: float


@dataclass(frozen=True)
class EndOfStream:
    """Why a stage stopped: end_of_stream | max_frames | source_lost | error | stopped."""

    reason: str
    error: BaseException | None = None


@dataclass
class PipelineResult:
    stats: DemoStats
    error: BaseException | None  # what ended the run abnormally (re-raised by the caller after reporting)


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before reconnect attempt `attempt` (1-based): base, 2*base, 4*base, ... capped at max_s."""
    return min(base_s * (2.0 ** (attempt - 1)), max_s)


def _put(queue: FrameQueue, item: Any, stop: threading.Event) -> bool:
    """Put, waiting for room in blocking mode but never past a stop; False when the run is stopping."""
    while not stop.is_set():
        try:
            queue.put(item, timeout=0.1)
            return True
        except TimeoutError:
            continue
        except QueueClosed:
            return False
    return False


def capture_loop(
    spec: SourceSpec,
    capture: Capture | None,
    opener: Callable[[SourceSpec], Capture],
    out: FrameQueue,
    stats: DemoStats,
    stop: threading.Event,
    options: PipelineOptions,
    on_event: Callable[[str], None],
) -> None:
    """Read frames until the source ends, is lost, or the run stops; always closes `out` with a reason."""
    failures = 0
    end = EndOfStream("stopped")
    try:
        while not stop.is_set():
            ok, image = capture.read() if capture is not None else (False, None)
            if ok and image is not None:
                failures = 0
                now = time.perf_counter()
                with stats.lock:
                    index = stats.frames_read
                    stats.frames_read += 1
                    if stats.t_first_frame is None:
                        stats.t_first_frame = now
                if not _put(out, Frame(index, image, now), stop):
                    break
                if not spec.live and options.max_frames is not None and index + 1 >= options.max_frames:
                    end = EndOfStream("max_frames")
                    break
                continue
            if not spec.live:
                end = EndOfStream("end_of_stream")
                break
            # A live source stopped delivering: reopen with exponential back-off, bounded attempts.
            if capture is not None:
                capture.release()
                capture = None
            if failures >= options.max_retries:
                end = EndOfStream(
                    "source_lost",
                    SourceError(
                        f"source '{spec.label}' stopped delivering frames and {options.max_retries} reconnect "
                        "attempts failed; check the camera/network and run again"
                    ),
                )
                break
            failures += 1
            delay = backoff_delay(failures, options.backoff_s, options.backoff_max_s)
            on_event(
                f"source '{spec.label}' dropped; reconnecting in {delay:.1f} s "
                f"(attempt {failures}/{options.max_retries})"
            )
            if stop.wait(delay):
                break
            with stats.lock:
                stats.reconnect_attempts += 1
            try:
                capture = opener(spec)
            except SourceError:
                continue
            with stats.lock:
                stats.reconnects += 1
            on_event(f"source '{spec.label}' reconnected")
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
        end = EndOfStream("error", exc)
    finally:
        if capture is not None:
            capture.release()
        out.close(end)


def inference_loop(
    segmenter: SegmenterLike, inp: FrameQueue, out: FrameQueue, stats: DemoStats, stop: threading.Event
) -> None:
    end: EndOfStream = EndOfStream("stopped")
    try:
        while not stop.is_set():
            try:
                item = inp.get(timeout=0.1)
            except Empty:
                continue
            if isinstance(item, EndOfStream):
                end = item
                break
            t0 = time.perf_counter()
            labels = segmenter.predict([item.image])[0]  # returns host arrays: the device work is done
            infer_s = time.perf_counter() - t0
            with stats.lock:
                stats.frames_processed += 1
                stats.inference.add(infer_s)
            if not _put(out, Result(item, labels, infer_s), stop):
                break
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
        end = EndOfStream("error", exc)
        stop.set()
    finally:
        out.close(end)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` / `systemctl stop` (SIGTERM) stops the demo like Ctrl-C: recording finalised, stats written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_pipeline(
    segmenter: SegmenterLike,
    spec: SourceSpec,
    capture: Capture,
    opener: Callable[[SourceSpec], Capture],
    renderer: Renderer,
    stats: DemoStats,
    options: PipelineOptions,
    recorder: VideoRecorder | None = None,
    window: Window | None = None,
    on_frame: Callable[[DemoStats], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run until the source ends, max_frames, quit key, Ctrl-C/SIGTERM, a lost source or an error.

    Takes ownership of `capture` (released by the capture thread). The recording is finalised and the
    window closed on every exit path.
    """
    on_event = on_event or (lambda message: None)
    live = spec.live
    frames_q = FrameQueue(1 if live else options.file_queue_size, drop_oldest=live)
    results_q = FrameQueue(1 if live else options.file_queue_size, drop_oldest=live)
    stop = threading.Event()
    workers = [
        threading.Thread(
            target=capture_loop,
            name="demo-capture",
            daemon=True,
            args=(spec, capture, opener, frames_q, stats, stop, options, on_event),
        ),
        threading.Thread(
            target=inference_loop,
            name="demo-inference",
            daemon=True,
            args=(segmenter, frames_q, results_q, stats, stop),
        ),
    ]
    fps = RateMeter()
    infer_ms: float | None = None
    latency_ms: float | None = None
    paused = False
    last: Result | None = None
    end = EndOfStream("stopped")
    stats.t_start = time.perf_counter()
    with _sigterm_as_interrupt():
        try:
            for worker in workers:
                worker.start()
            while True:
                if window is not None:
                    action = key_action(window.poll(30 if paused else 1))
                    if action == "quit":
                        end = EndOfStream("quit")
                        break
                    if action in ("pause", "next_view"):
                        if action == "pause":
                            paused = not paused
                        else:
                            renderer.view = next_view(renderer.view)
                        if last is not None:  # redraw the held frame so the key has a visible effect
                            window.show(
                                renderer.render(
                                    last.frame.image,
                                    last.labels,
                                    hud_lines(fps.rate, infer_ms, latency_ms, segmenter.backend, paused),
                                )
                            )
                if paused:
                    continue
                try:
                    item = results_q.get(timeout=0.005 if window is not None else 0.1)
                except Empty:
                    continue
                if isinstance(item, EndOfStream):
                    end = item
                    break
                t0 = time.perf_counter()
                infer_ms = item.infer_s * 1e3 if infer_ms is None else 0.9 * infer_ms + 100.0 * item.infer_s
                image = renderer.render(
                    item.frame.image,
                    item.labels,
                    hud_lines(fps.rate, infer_ms, latency_ms, segmenter.backend),
                )
                if recorder is not None:
                    recorder.write(image)
                if window is not None:
                    window.show(image)
                now = time.perf_counter()
                fps.tick(now)
                e2e = now - item.frame.t_read
                latency_ms = e2e * 1e3 if latency_ms is None else 0.9 * latency_ms + 100.0 * e2e
                with stats.lock:
                    stats.frames_rendered += 1
                    stats.t_last_render = now
                    stats.end_to_end.add(e2e)
                    stats.render.add(now - t0)
                    stats.frames_recorded = recorder.frames if recorder is not None else 0
                last = item
                if on_frame is not None:
                    on_frame(stats)
                if options.max_frames is not None and stats.frames_rendered >= options.max_frames:
                    end = EndOfStream("max_frames")
                    break
        except KeyboardInterrupt:
            end = EndOfStream("interrupted")
        except BaseException as exc:  # an error in rendering/recording: still shut down in order
            end = EndOfStream("error", exc)
        finally:
            _shutdown(stop, frames_q, results_q, workers, options.join_timeout_s)
            stats.dropped_before_inference = frames_q.dropped
            stats.dropped_before_render = results_q.dropped
            if recorder is not None:
                recorder.close()
                stats.frames_recorded = recorder.frames
            if window is not None:
                window.close()
            stats.t_end = time.perf_counter()
    stats.ended_by = end.reason
    stats.error = None if end.error is None else (str(end.error) or type(end.error).__name__)
    return PipelineResult(stats, end.error)


def _shutdown(
    stop: threading.Event,
    frames_q: FrameQueue,
    results_q: FrameQueue,
    workers: list[threading.Thread],
    join_timeout_s: float,
) -> None:
    stop.set()
    for q in (frames_q, results_q):
        q.close(EndOfStream("stopped"))  # wakes any producer blocked on a full queue
        q.clear()
    deadline = time.monotonic() + join_timeout_s
    for worker in workers:
        if worker.is_alive() or worker.ident is not None:
            # A worker stuck inside a driver call (an RTSP read timing out) is a daemon thread: we stop
            # waiting for it rather than hang the exit.
            worker.join(max(0.0, deadline - time.monotonic()))
