"""`run_benchmark`: open every model x backend x size, measure them interleaved, return a report dict."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.bench import memory
from edgeseg.bench.device import read_device_facts, run_command
from edgeseg.bench.report import build_report, build_result
from edgeseg.bench.runner import (
    CaseRun,
    RoundCallback,
    RunPlan,
    run_back_to_back,
    run_interleaved,
    synthetic_frames,
)
from edgeseg.bench.targets import check_model_path, open_model
from edgeseg.errors import ConfigError, EdgesegError

DEFAULT_SIZE = (512, 1024)


@dataclass(frozen=True)
class BenchConfig:
    models: Sequence[str | Path]
    backends: Sequence[str] = ("auto",)
    sizes: Sequence[tuple[int, int]] = ()  # empty: the model's fixed input size, else DEFAULT_SIZE

    @property
    def num_cases(self) -> int:
        return len(self.models) * len(self.backends) * max(len(self.sizes), 1)

    batch: int = 1
    plan: RunPlan = field(default_factory=RunPlan)
    power: bool = False
    power_s: float = 5.0
    idle_s: float = 2.0
    threads: int | None = None  # CPU backends: intra-op threads (None: the runtime's default)
    command: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("give at least one model file")
        if self.batch < 1:
            raise ConfigError(f"--batch must be >= 1, got {self.batch}")
        if self.plan.iters is not None and self.plan.iters < 2:
            raise ConfigError("--iters must be >= 2 (statistics need two samples)")
        if self.plan.warmup_iters is not None and self.plan.warmup_iters < 0:
            raise ConfigError("--warmup must be >= 0")


# opener(path, backend, size, threads=None) -> Segmenter; tests pass fakes
Opener = Callable[..., Any]


def graph_macs(path: Path, model_input: Any) -> dict[str, Any]:
    """GMACs of an ONNX file at the input shape actually fed; gmacs None (with a note) when not countable."""

    def missing(note: str) -> dict[str, Any]:
        return {"gmacs": None, "gflops": None, "note": note}

    if path.suffix.lower() != ".onnx":
        return missing(f"GMACs are counted from ONNX graphs; {path.suffix or 'this file'} is not one")
    try:
        from edgeseg.bench.onnx_flops import count_onnx_macs, onnx_input_shapes

        names = list(onnx_input_shapes(path))
        shapes = (
            {names[0]: list(model_input.shape)} if len(names) == 1 and hasattr(model_input, "shape") else None
        )
        return count_onnx_macs(path, shapes).to_dict()
    except ImportError:
        return missing("install the onnx package to count GMACs")
    except Exception as exc:  # counting is a nice-to-have; the timing stands without it
        return missing(
            f"GMACs not counted: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
        )


def file_size_mb(path: Path) -> float:
    """Model file size plus ONNX external-data files next to it (<name>.data / .onnx_data / .bin)."""
    total = path.stat().st_size
    if path.suffix.lower() == ".onnx":
        for extra in (
            path.with_suffix(".onnx.data"),
            path.with_suffix(".data"),
            path.with_suffix(".onnx_data"),
        ):
            if extra.exists() and extra != path:
                total += extra.stat().st_size
    return round(total / 2**20, 3)


def _close(segmenter: Any) -> None:
    close = getattr(segmenter, "close", None)
    if callable(close):
        close()


def prepare_cases(
    config: BenchConfig,
    opener: Opener = open_model,
    mem_run: Callable[[list[str]], str | None] | None = run_command,
    on_round: RoundCallback | None = None,
    opened: contextlib.ExitStack | None = None,
) -> list[tuple[CaseRun, str]]:
    """Open every model x backend x size once; record memory growth, file size and graph MACs per case.
    Each segmenter opened is registered with `opened` (closed when it exits, also after an error)."""
    paths = [check_model_path(m) for m in config.models]  # fail on a typo before loading anything
    cases: list[tuple[CaseRun, str]] = []
    for path in paths:
        for backend in config.backends:
            for size in config.sizes or [None]:
                before = memory.snapshot(mem_run)
                seg = opener(path, backend, size, threads=config.threads)
                if opened is not None:
                    opened.callback(_close, seg)
                h, w = size or getattr(seg, "input_size", None) or DEFAULT_SIZE
                frames = synthetic_frames(h, w, config.batch)
                model_input = seg.preprocess(frames)
                seg.postprocess(seg.infer(model_input), [(h, w)] * config.batch)  # first run allocates
                seg.synchronize()
                after = memory.snapshot(mem_run)
                label = f"{path.name} [{backend}] {h}x{w}"
                case = CaseRun(segmenter=seg, frames=frames, label=label, model_input=model_input)
                case.info = {
                    "model": str(path),
                    "model_name": path.stem,
                    "model_file_mb": file_size_mb(path),
                    "graph": graph_macs(path, model_input),
                    "memory": memory.delta(before, after),
                }
                cases.append((case, backend))
                if on_round is not None:
                    on_round("open", len(cases), 0.0)
    return cases


def measure_power(
    cases: Sequence[CaseRun], mode: str, seconds: float, idle_s: float, sampler: Any
) -> dict[str, Any]:
    """Idle baseline, then each case back to back for `seconds` while tegrastats samples the input rail."""
    from edgeseg.bench.power import energy_summary

    if not sampler.wait_for_samples(1, timeout_s=5.0):
        raise EdgesegError("tegrastats printed no power readings within 5 s; check `tegrastats` runs here")
    t0 = time.perf_counter()
    time.sleep(idle_s)
    t1 = time.perf_counter()
    idle_w = sampler.samples.window_mean_w(t0, t1)
    idle = {
        "rail": sampler.samples.rail,
        "mean_w": idle_w,
        "seconds": t1 - t0,
        "samples": sampler.samples.window_count(t0, t1),
    }
    for case in cases:
        start = time.perf_counter()
        frames, elapsed = run_back_to_back(case, mode, seconds)
        end = start + elapsed
        case.info["power"] = energy_summary(
            sampler.samples.window_mean_w(start, end),
            idle_w,
            elapsed,
            frames,
            sampler.samples.window_count(start, end),
            sampler.samples.rail,
        )
    return idle


def run_benchmark(
    config: BenchConfig,
    opener: Opener = open_model,
    on_round: RoundCallback | None = None,
    device_root: str = "/",
    sampler_factory: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Measure every case and return the report (schema: docs/bench.md)."""
    sampler = None
    if config.power:
        from edgeseg.bench.power import TegrastatsSampler

        if sampler_factory is None and not TegrastatsSampler.available():
            raise ConfigError("--power needs `tegrastats` (Jetson only); it is not on PATH here")
        sampler = sampler_factory() if sampler_factory else TegrastatsSampler()
    device = read_device_facts(device_root)
    load_before = _load_average()
    with contextlib.ExitStack() as opened:  # sessions / device buffers released now, also after an error
        cases = prepare_cases(config, opener, on_round=on_round, opened=opened)
        runs = [c for c, _ in cases]
        run_interleaved(runs, config.plan, on_round=on_round)
        power_idle = None
        if sampler is not None:
            with sampler:
                power_idle = measure_power(runs, config.plan.mode, config.power_s, config.idle_s, sampler)
        results = [build_result(c, config.plan.mode, backend) for c, backend in cases]
    settings = {
        **config.plan.describe(),
        "batch": config.batch,
        "threads": config.threads,
        "power": config.power,
        "power_seconds_per_case": config.power_s if config.power else None,
        "input": "synthetic BGR uint8 frames at the input size (content does not change dense-model cost)",
    }
    return build_report(
        results,
        settings,
        device,
        memory.peak_rss_mb(),
        power_idle,
        config.command,
        host_load={"before": load_before, "after": _load_average()},
    )


def _load_average() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine is part of what the numbers mean."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None
