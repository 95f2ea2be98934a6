"""The timing loop: warm-up, then interleaved (round-robin) measurement of every case.

Several cases (models x backends x sizes) measured in one run are interleaved: round r runs case 0,
case 1, ... case N-1 once each, so clock ramps, thermal throttling and background load hit every case
alike instead of whichever happened to run last. GPU work is bracketed by `synchronize()` so the timer
stops only when the device is done; a backend that measures its own device time (CUDA events) exposes it
as `last_infer_device_ms` after `infer()` and it is recorded next to the host-side time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

MODES = ("e2e", "infer")
STAGES = ("preprocess", "infer", "postprocess")


class SegmenterLike(Protocol):
    backend: str
    input_size: tuple[int, int] | None

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray: ...
    def infer(self, batch: np.ndarray) -> np.ndarray: ...
    def postprocess(self, output: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]: ...
    def synchronize(self) -> None: ...


@dataclass(frozen=True)
class RunPlan:
    """How long to warm up and to measure. Exactly one of each pair is used (iterations win if both)."""

    warmup_iters: int | None = 5
    warmup_s: float | None = None
    iters: int | None = 50
    duration_s: float | None = None
    mode: str = "e2e"  # "e2e": preprocess + infer + postprocess, timed per stage; "infer": infer() only
    min_iters: int = 2  # statistics need two samples; a --duration-s run never stops before this

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.iters is None and self.duration_s is None:
            raise ValueError("give iters or duration_s")
        if self.warmup_iters is None and self.warmup_s is None:
            raise ValueError("give warmup_iters or warmup_s")

    def describe(self) -> dict[str, Any]:
        warm = (
            {"iterations": self.warmup_iters} if self.warmup_iters is not None else {"seconds": self.warmup_s}
        )
        meas = {"iterations": self.iters} if self.iters is not None else {"seconds": self.duration_s}
        return {
            "mode": self.mode,
            "warmup": warm,
            "measure": meas,
            "interleaved": "round-robin per iteration",
        }


@dataclass
class CaseRun:
    """One benchmark case and everything measured for it."""

    segmenter: SegmenterLike
    frames: list[np.ndarray]
    label: str = ""
    model_input: np.ndarray | None = None  # preprocessed batch reused by the "infer" mode
    total_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    device_ms: list[float] = field(default_factory=list)
    warmup_iterations: int = 0
    info: dict[str, Any] = field(default_factory=dict)  # memory, power, anything measured around the loop

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [(f.shape[0], f.shape[1]) for f in self.frames]

    @property
    def batch(self) -> int:
        return len(self.frames)


Clock = Callable[[], int]


def _device_ms(seg: SegmenterLike) -> float | None:
    value = getattr(seg, "last_infer_device_ms", None)
    return float(value) if isinstance(value, (int, float)) else None


def measure_once(case: CaseRun, mode: str, record: bool, clock: Clock = time.perf_counter_ns) -> float:
    """Run one iteration of `case`; returns its wall time in ms (and records it when `record`)."""
    seg = case.segmenter
    if mode == "infer":
        if case.model_input is None:
            case.model_input = seg.preprocess(case.frames)
        t0 = clock()
        seg.infer(case.model_input)
        seg.synchronize()  # sync point: the timer must not stop before the device finishes
        t1 = clock()
        total = (t1 - t0) / 1e6
        if record:
            case.total_ms.append(total)
            case.stage_ms["infer"].append(total)
    else:
        t0 = clock()
        x = seg.preprocess(case.frames)
        t1 = clock()
        y = seg.infer(x)
        seg.synchronize()
        t2 = clock()
        seg.postprocess(y, case.sizes)
        t3 = clock()
        total = (t3 - t0) / 1e6
        if record:
            case.total_ms.append(total)
            for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3)), strict=True):
                case.stage_ms[stage].append((b - a) / 1e6)
    if record and (dev := _device_ms(seg)) is not None:
        case.device_ms.append(dev)
    return total


RoundCallback = Callable[[str, int, float], None]  # (phase "open"|"warmup"|"measure", count done, seconds)


def _rounds(
    cases: Sequence[CaseRun],
    mode: str,
    iters: int | None,
    seconds: float | None,
    record: bool,
    min_rounds: int,
    clock: Clock,
    on_round: RoundCallback | None,
    phase: str,
) -> int:
    """Round-robin over `cases` for `iters` rounds, or until `seconds` have passed (>= min_rounds)."""
    start = clock()
    done = 0
    while True:
        elapsed = (clock() - start) / 1e9
        if iters is not None and done >= iters:
            break
        if iters is None and seconds is not None and elapsed >= seconds and done >= min_rounds:
            break
        for case in cases:
            measure_once(case, mode, record, clock)
            if not record:
                case.warmup_iterations += 1
        done += 1
        if on_round is not None:
            on_round(phase, done, (clock() - start) / 1e9)
    return done


def run_interleaved(
    cases: Sequence[CaseRun],
    plan: RunPlan,
    clock: Clock = time.perf_counter_ns,
    on_round: RoundCallback | None = None,
) -> int:
    """Warm up, then measure every case round-robin. Returns the number of measured rounds."""
    if not cases:
        raise ValueError("nothing to benchmark")
    _rounds(cases, plan.mode, plan.warmup_iters, plan.warmup_s, False, 1, clock, on_round, "warmup")
    return _rounds(
        cases, plan.mode, plan.iters, plan.duration_s, True, plan.min_iters, clock, on_round, "measure"
    )


def run_back_to_back(
    case: CaseRun, mode: str, seconds: float, clock: Clock = time.perf_counter_ns
) -> tuple[int, float]:
    """Run one case continuously for `seconds` (power measurement needs one case at a time).

    Returns (frames processed, elapsed seconds).
    """
    start = clock()
    frames = 0
    while (clock() - start) / 1e9 < seconds or frames == 0:
        measure_once(case, mode, record=False, clock=clock)
        frames += case.batch
    return frames, (clock() - start) / 1e9


def synthetic_frames(height: int, width: int, batch: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic BGR uint8 frames; content does not change the cost of a dense segmenter."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(batch)]
