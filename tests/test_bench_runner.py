"""The timing loop with fake segmenters: interleaving, stage timing, sync points, plans, the report schema."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgeseg.bench.core import BenchConfig, run_benchmark
from edgeseg.bench.report import RESULT_KEYS, build_report, validate_report
from edgeseg.bench.runner import CaseRun, RunPlan, run_interleaved, synthetic_frames


class FakeClock:
    """perf_counter_ns stand-in advanced only by the fake segmenters: timings become exact."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance_ms(self, ms: float) -> None:
        self.ns += int(ms * 1e6)


class FakeSegmenter:
    """Records every call into a shared log; each stage costs a fixed (fake) time."""

    def __init__(
        self,
        name: str,
        log: list[tuple[str, str]],
        clock: FakeClock | None = None,
        costs: tuple[float, float, float, float] = (1.0, 5.0, 2.0, 3.0),
        device_ms: float | None = None,
        backend: str = "fake-cpu",
        input_size: tuple[int, int] | None = None,
    ) -> None:
        self.name, self.log, self.clock = name, log, clock
        self.pre_ms, self.infer_ms, self.post_ms, self.sync_ms = costs
        self.backend, self.input_size, self.meta = backend, input_size, {}
        self.device_ms = device_ms
        self.last_infer_device_ms: float | None = None
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def _tick(self, what: str, ms: float) -> None:
        self.log.append((self.name, what))
        if self.clock is not None:
            self.clock.advance_ms(ms)

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        self._tick("preprocess", self.pre_ms)
        return np.zeros((len(frames), 3, 4, 4), np.float32)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._tick("infer", self.infer_ms)  # "GPU" work queued: only synchronize() waits for it
        self.last_infer_device_ms = self.device_ms
        return np.zeros((batch.shape[0], 2, 4, 4), np.float32)

    def postprocess(self, output: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        self._tick("postprocess", self.post_ms)
        return [np.zeros(s, np.uint8) for s in sizes]

    def synchronize(self) -> None:
        self._tick("synchronize", self.sync_ms)


def _cases(names: Sequence[str], log: list, clock: FakeClock | None = None, **kw: object) -> list[CaseRun]:
    return [
        CaseRun(segmenter=FakeSegmenter(n, log, clock, **kw), frames=synthetic_frames(8, 8, 1), label=n)
        for n in names
    ]


def test_cases_are_interleaved_round_robin() -> None:
    log: list[tuple[str, str]] = []
    cases = _cases(["A", "B", "C"], log)
    rounds = run_interleaved(cases, RunPlan(warmup_iters=2, iters=4))
    assert rounds == 4
    infer_order = [name for name, what in log if what == "infer"]
    assert infer_order == ["A", "B", "C"] * 6  # 2 warm-up rounds + 4 measured, never A A A ... B B B
    for case in cases:
        assert case.warmup_iterations == 2 and len(case.total_ms) == 4


def test_stage_times_include_synchronize_in_inference() -> None:
    clock, log = FakeClock(), []
    (case,) = _cases(["A"], log, clock)
    run_interleaved([case], RunPlan(warmup_iters=0, iters=3), clock=clock)
    assert case.stage_ms["preprocess"] == [1.0] * 3
    assert case.stage_ms["infer"] == [8.0] * 3  # 5 ms launch + 3 ms waiting for the device
    assert case.stage_ms["postprocess"] == [2.0] * 3
    assert case.total_ms == [11.0] * 3
    order = [what for _, what in log[:4]]
    assert order == ["preprocess", "infer", "synchronize", "postprocess"]


def test_infer_mode_times_only_inference_on_a_fixed_batch() -> None:
    clock, log = FakeClock(), []
    (case,) = _cases(["A"], log, clock)
    case.model_input = None
    run_interleaved([case], RunPlan(warmup_iters=1, iters=5, mode="infer"), clock=clock)
    calls = [what for _, what in log]
    assert calls.count("preprocess") == 1 and calls.count("postprocess") == 0  # input prepared once, untimed
    assert case.total_ms == [8.0] * 5 and case.stage_ms["infer"] == [8.0] * 5


def test_duration_plan_gives_every_case_the_same_number_of_rounds() -> None:
    clock, log = FakeClock(), []
    cases = _cases(["A", "B"], log, clock)  # 11 ms per iteration -> 22 ms per round
    run_interleaved(cases, RunPlan(warmup_iters=None, warmup_s=0.05, iters=None, duration_s=0.1), clock=clock)
    # warm-up: 3 rounds (66 ms >= 50 ms); measure: 5 rounds (110 ms >= 100 ms)
    assert [c.warmup_iterations for c in cases] == [3, 3]
    assert [len(c.total_ms) for c in cases] == [5, 5]


def test_duration_plan_still_measures_twice() -> None:
    clock, log = FakeClock(), []
    cases = _cases(["A"], log, clock, costs=(0, 500.0, 0, 0))
    run_interleaved(cases, RunPlan(warmup_iters=0, iters=None, duration_s=0.01), clock=clock)
    assert len(cases[0].total_ms) == 2


def test_device_timer_is_recorded_when_the_backend_exposes_it() -> None:
    log: list = []
    (case,) = _cases(["A"], log, device_ms=4.25)
    run_interleaved([case], RunPlan(warmup_iters=1, iters=3))
    assert case.device_ms == [4.25] * 3


def test_plan_validation() -> None:
    with pytest.raises(ValueError):
        RunPlan(mode="fast")
    with pytest.raises(ValueError):
        RunPlan(iters=None, duration_s=None)


def _fake_opener(log: list, opened: list, segs: list):
    def opener(
        path: Path, backend: str, size: tuple[int, int] | None, threads: int | None = None
    ) -> FakeSegmenter:
        opened.append((path.name, backend, size, threads))
        segs.append(FakeSegmenter(f"{path.name}@{size}", log, backend=f"{backend}-resolved"))
        return segs[-1]

    return opener


def test_run_benchmark_interleaves_models_and_sizes_and_reports_schema(tmp_path: Path) -> None:
    models = []
    for name in ("a.engine", "b.engine"):
        (tmp_path / name).write_bytes(b"\0" * 2048)
        models.append(tmp_path / name)
    log: list = []
    opened: list = []
    segs: list[FakeSegmenter] = []
    config = BenchConfig(
        models=models,
        backends=["tensorrt"],
        sizes=[(16, 32), (32, 64)],
        batch=2,
        threads=3,
        plan=RunPlan(warmup_iters=1, iters=3),
        command=["edgeseg", "bench"],
    )
    report = run_benchmark(config, opener=_fake_opener(log, opened, segs), device_root=str(tmp_path))
    assert validate_report(report) == []
    assert opened == [
        ("a.engine", "tensorrt", (16, 32), 3),
        ("a.engine", "tensorrt", (32, 64), 3),
        ("b.engine", "tensorrt", (16, 32), 3),
        ("b.engine", "tensorrt", (32, 64), 3),
    ]
    assert all(s.closed for s in segs)  # sessions released after the run
    measured = [n for n, what in log if what == "infer"][
        4 + 4 :
    ]  # after one probe each and one warm-up round
    assert (
        measured == ["a.engine@(16, 32)", "a.engine@(32, 64)", "b.engine@(16, 32)", "b.engine@(32, 64)"] * 3
    )
    results = report["results"]
    assert len(results) == 4 and all(set(r) == set(RESULT_KEYS) for r in results)
    r0 = results[0]
    assert r0["input_size"] == [16, 32] and r0["batch"] == 2 and r0["backend"] == "tensorrt-resolved"
    assert r0["iterations"] == 3 and r0["warmup_iterations"] == 1 and r0["mode"] == "e2e"
    assert r0["model_file_mb"] == pytest.approx(2048 / 2**20, abs=1e-3)
    assert r0["graph"]["gmacs"] is None and "ONNX" in r0["graph"]["note"]
    assert r0["fps"] == pytest.approx(2000.0 / r0["latency_ms"]["mean"])
    assert set(r0["stages_ms"]) == {"preprocess", "infer", "postprocess"}
    assert report["settings"]["measure"] == {"iterations": 3} and report["schema_version"] == 1
    if sys.platform.startswith("linux"):
        assert report["peak_host_rss_mb"] > 0 and r0["memory"]["host_rss_delta_mb"] is not None


def test_validate_report_finds_problems() -> None:
    assert "missing key: results" in validate_report({"schema_version": 1})
    bad = build_report([], {}, {"cpu": {}}, None)
    bad["schema_version"] = 99
    assert any("schema_version" in p for p in validate_report(bad))
    result = {k: None for k in RESULT_KEYS}
    result["latency_ms"] = {
        "n": 2,
        "mean": 1,
        "median": 5,
        "p90": 2,
        "p99": 3,
        "min": 0,
        "max": 4,
        "std": 0,
        "cv": 0,
    }
    bad["schema_version"] = 1
    bad["results"] = [result]
    problems = validate_report(bad)
    assert any("not ordered" in p for p in problems) and any("fps" in p for p in problems)


def test_high_cv_produces_one_warning_per_case_and_clock_advice(tmp_path: Path) -> None:
    (tmp_path / "m.engine").write_bytes(b"x")
    clock_costs = iter([1.0, 30.0] * 50)

    class Jittery(FakeSegmenter):
        def infer(self, batch: np.ndarray) -> np.ndarray:
            import time

            time.sleep(next(clock_costs) / 1000)
            return super().infer(batch)

    def opener(path: Path, backend: str, size: tuple[int, int] | None, threads: int | None = None) -> Jittery:
        return Jittery("m", [], backend=backend)

    config = BenchConfig(
        models=[tmp_path / "m.engine"], plan=RunPlan(warmup_iters=0, iters=6), sizes=[(8, 8)]
    )
    report = run_benchmark(config, opener=opener, device_root=str(tmp_path))
    assert report["results"][0]["latency_ms"]["cv"] > 0.1
    assert any("CV" in w for w in report["results"][0]["warnings"])
    assert any("jetson_clocks" in w and "governor" in w for w in report["warnings"])


def test_power_phase_with_a_fake_tegrastats(tmp_path: Path) -> None:
    from edgeseg.bench.power import TegrastatsSampler

    script = tmp_path / "tegrastats.py"
    script.write_text(
        "import time\nwhile True:\n    print('RAM 1/2MB VDD_IN 4200mW/4200mW', flush=True)\n"
        "    time.sleep(0.01)\n"
    )
    (tmp_path / "m.engine").write_bytes(b"x")
    config = BenchConfig(
        models=[tmp_path / "m.engine"],
        sizes=[(8, 8)],
        plan=RunPlan(warmup_iters=0, iters=2),
        power=True,
        power_s=0.3,
        idle_s=0.2,
    )
    report = run_benchmark(
        config,
        opener=lambda p, b, s, threads=None: FakeSegmenter("m", [], costs=(0, 0, 0, 0)),
        device_root=str(tmp_path),
        sampler_factory=lambda: TegrastatsSampler(command=[sys.executable, str(script)]),
    )
    power = report["results"][0]["power"]
    assert power["rail"] == "VDD_IN" and power["mean_w"] == pytest.approx(4.2) and power["samples"] >= 5
    assert power["frames"] > 0 and power["energy_per_frame_mj"] == pytest.approx(
        4.2 * power["seconds"] / power["frames"] * 1000
    )
    assert report["power_idle"]["mean_w"] == pytest.approx(4.2)
    assert power["energy_per_frame_above_idle_mj"] == pytest.approx(0.0, abs=1e-9)


def test_docs_describe_every_schema_key() -> None:
    """docs/bench.md is the schema reference: every key the report writes must be documented there."""
    from edgeseg.bench.report import REPORT_KEYS
    from edgeseg.bench.stats import STAT_KEYS

    docs = (Path(__file__).resolve().parents[1] / "docs" / "bench.md").read_text()
    missing = [k for k in (*REPORT_KEYS, *RESULT_KEYS, *STAT_KEYS) if f"`{k}`" not in docs]
    assert missing == []
