"""`edgeseg quickstart`: the whole pipeline on the built-in synthetic benchmark, on a laptop CPU.

render data -> shared source-only init -> DUDA student per target domain -> BN merge -> ONNX (FP32 + INT8)
-> per-domain evaluation -> latency benchmark -> headless demo on a synthetic drive video -> report.md.

Every stage calls the same library functions as the individual commands; this module only sequences them
and writes the report. Outputs land in one folder:

    OUT/synthetic/                 rendered data (source + targets, train/val)
    OUT/runs/init_source_only/     the shared initialisation (also the "source-only" baseline)
    OUT/runs/duda_<domain>/        one adapted student per target domain
    OUT/deploy/                    merged.safetensors, merged.onnx, merged_int8.onnx, report.{json,md}
    OUT/bench.json                 latency of the exported models (ONNX Runtime CPU)
    OUT/demo.mp4, OUT/demo_stats.json, OUT/drive.mp4 (demo input)
    OUT/predictions.png            input / prediction / ground truth per domain
    OUT/report.md, OUT/report.json
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError

LOG = logging.getLogger("edgeseg")


STEPS = 7


@dataclass(frozen=True)
class QuickstartConfig:
    out: Path = Path("edgeseg-quickstart")
    domains: tuple[str, ...] = ("city", "night")
    # Distill iterations per run (init, then one per domain, the domains in parallel). 300 rather than the
    # preset's 400: with the MiT-B1 -> B0-d1 pair a DUDA iteration costs ~1 s on one core, and the whole
    # quickstart must stay near 10 minutes on 2 cores including the install.
    iters: int | None = 300
    merge_method: str = "bn"
    seed: int = 0
    bench_iters: int = 200  # a 128x256 model runs in a few ms: 20 timed runs gave CVs of 20-30%
    demo_frames: int = 48
    threads: int | None = None
    jobs: int = (
        2  # domain students trained at once (separate processes, one thread each); 1 = one after another
    )
    overrides: tuple[str, ...] = field(default_factory=tuple)  # extra `key=value` distill settings

    def __post_init__(self) -> None:
        if len(self.domains) < 2:
            raise ConfigError(
                "quickstart merges students of at least two target domains, e.g. --domains city,night"
            )
        if "source" in self.domains:
            raise ConfigError("'source' is the labelled domain; pick targets from city, night, fog, rain")
        if self.iters is not None and self.iters < 10:
            raise ConfigError("--iters must be >= 10")
        if self.jobs < 1:
            raise ConfigError("--jobs must be >= 1")


def _distill_config(cfg: QuickstartConfig, data_root: Path, method: str, domain: str, init: Path | None):
    from edgeseg.uda.config import load_config

    overrides = [
        f"method={method}",
        f"seed={cfg.seed}",
        f"data.source_root={data_root}",
        f"data.target_root={data_root}",
        f"data.target_domain={domain}",
        "train.source_only_baseline=false",
    ]
    if cfg.iters is not None:
        overrides.append(f"iters={cfg.iters}")
    if cfg.threads is not None:
        overrides.append(f"train.threads={cfg.threads}")
    if init is not None:
        overrides.append(f"models.small_init={init}")
    return load_config(preset="synthetic", overrides=[*overrides, *cfg.overrides])


def _distill_once(dcfg: Any, run_dir: Path, log: Callable[[str], None]) -> Path:
    """Run distill into `run_dir`; a finished run there is reused, an interrupted one resumed (re-running
    quickstart in the same folder continues where it stopped instead of starting over)."""
    from edgeseg.uda.api import run_distill

    student = run_dir / "student.safetensors"
    if student.is_file() and (run_dir / "report.json").is_file():
        log(f"reusing the finished run in {run_dir}")
        return student
    resume = (run_dir / "checkpoint.safetensors").is_file()
    return run_distill(dcfg, run_dir, resume=resume, log=log).student_path


def _distill_parallel(
    jobs: dict[str, tuple[Any, Path]],
    workers: int,
    log: Callable[[str], None],
    progress: Callable[[int, int, str], None] | None,
) -> dict[str, Path]:
    """Run several distill configs at once, each an `edgeseg distill` process with one torch thread (runs are
    seeded through torch's global RNG, so threads in one process would not be reproducible). Finished runs
    are reused and interrupted ones resumed, as in `_distill_once`. Progress: the runs' summed steps."""
    import subprocess
    import sys

    from edgeseg.errors import EdgesegError
    from edgeseg.io_utils import write_text_atomic
    from edgeseg.uda.config import replace_config, to_toml

    pending: list[tuple[str, list[str], Path, int]] = []
    done: dict[str, Path] = {}
    for name, (dcfg, run_dir) in jobs.items():
        student = run_dir / "student.safetensors"
        if student.is_file() and (run_dir / "report.json").is_file():
            log(f"reusing the finished run in {run_dir}")
            done[name] = student
            continue
        dcfg = replace_config(dcfg, ["train.threads=1", "train.progress=false"])
        toml = run_dir.parent / f"{run_dir.name}.toml"
        toml.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(toml, to_toml(dcfg))
        cmd = [sys.executable, "-m", "edgeseg", "distill", "--config", str(toml), "--out", str(run_dir)]
        if (run_dir / "checkpoint.safetensors").is_file():
            cmd.append("--resume")
        pending.append((name, cmd, run_dir, dcfg.iters))
    total = sum(p[3] for p in pending)
    # each run's output goes to <run>.log next to its folder: a pipe nobody reads while the run lasts could
    # fill up and stall the child
    running: list[tuple[str, subprocess.Popen, Path, int]] = []
    finished_steps = 0
    try:
        while pending or running:
            while pending and len(running) < max(workers, 1):
                name, cmd, run_dir, iters = pending.pop(0)
                log(f"  started: {run_dir.name} (log: {_run_log(run_dir)})")
                with open(_run_log(run_dir), "w", encoding="utf-8") as out:
                    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
                running.append((name, proc, run_dir, iters))
            time.sleep(1.0)
            steps = finished_steps
            for item in list(running):
                name, proc, run_dir, iters = item
                if proc.poll() is None:
                    steps += _last_step(run_dir / "metrics.jsonl")
                    continue
                running.remove(item)
                if proc.returncode != 0:
                    lines = [
                        ln for ln in _run_log(run_dir).read_text(encoding="utf-8").splitlines() if ln.strip()
                    ]
                    last = ([ln for ln in lines if ln.startswith("error:")] or lines or ["(no message)"])[-1]
                    raise EdgesegError(f"distilling {run_dir.name} failed: {last}")
                finished_steps += iters
                steps += iters
                done[name] = run_dir / "student.safetensors"
                log(f"  finished: {run_dir.name}")
            if progress is not None and total:
                progress(steps, total, f"DUDA x{len(jobs)}")
    finally:  # an error or Ctrl-C stops the other runs too (each resumes from its checkpoint next time)
        for _, proc, _, _ in running:
            proc.terminate()  # SIGTERM first: the child removes its temp files on the way out
        for _, proc, _, _ in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {name: done[name] for name in jobs}


def _run_log(run_dir: Path) -> Path:
    return run_dir.parent / f"{run_dir.name}.log"


def _last_step(metrics: Path) -> int:
    """The last logged training step of a running distill (0 before the first log line)."""
    import json

    try:
        lines = metrics.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError):
            continue
    return 0


def _calibration_dir(data_root: Path, domains: Sequence[str]) -> Path:
    """INT8 calibration images: the target domains' *training* images (what the device will see), never val."""
    from edgeseg.data.datasets import load_dataset

    calib = data_root / "calibration"
    calib.mkdir(parents=True, exist_ok=True)
    import shutil

    for domain in domains:
        ds = load_dataset("synthetic", data_root, "train", domain=domain)
        for src in [s.image for s in ds.samples[:16]]:
            dst = calib / f"{domain}_{Path(src).name}"
            if not dst.exists():
                shutil.copyfile(src, dst)
    return calib


def render_drive_video(
    path: Path, domains: Sequence[str], frames: int, size: tuple[int, int], seed: int
) -> Path:
    """A synthetic 'drive': consecutive procedural scenes, cycling through the target domains (each frame is a
    new scene: no temporal coherence is simulated). Written atomically as mp4 (mp4v)."""
    import cv2
    import numpy as np

    from edgeseg.data.synthetic import render_scene
    from edgeseg.io_utils import atomic_path

    h, w = size
    with atomic_path(path.with_suffix(".mp4")) as tmp:
        video = tmp.with_suffix(".mp4")
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (w, h))
        if not writer.isOpened():
            raise ConfigError("OpenCV cannot write mp4 (mp4v) video here")
        for i in range(frames):
            domain = domains[(i * len(domains)) // frames]
            bgr, _ = render_scene(np.random.default_rng([seed, 7919, i]), domain, size)
            writer.write(bgr)
        writer.release()
        video.replace(tmp)
    return path


def prediction_grid(
    onnx_path: Path, data_root: Path, domains: Sequence[str], out: Path, per_domain: int = 2
) -> Path:
    """Rows of (input | prediction | ground truth) for the first val images of each domain."""
    import cv2
    import numpy as np

    from edgeseg.data.datasets import load_dataset
    from edgeseg.data.labels import colorize
    from edgeseg.deploy.runtime.backends import open_segmenter
    from edgeseg.io_utils import atomic_path

    rows = []
    with open_segmenter(onnx_path, backend="onnxruntime-cpu") as seg:
        for domain in domains:
            ds = load_dataset("synthetic", data_root, "val", domain=domain)
            for i in range(min(per_domain, len(ds))):
                bgr, gt = ds[i]
                pred = seg.predict([bgr])[0]
                row = np.concatenate([bgr, colorize(pred), colorize(gt)], axis=1)
                cv2.putText(
                    row, domain, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA
                )
                rows.append(row)
    with atomic_path(out) as tmp:
        ok, buf = cv2.imencode(".png", np.concatenate(rows, axis=0))
        if not ok:
            raise ConfigError("cannot encode the prediction grid as PNG")
        tmp.write_bytes(buf.tobytes())
    return out


def check_quickstart(cfg: QuickstartConfig) -> None:
    """Everything that can be wrong with the options, checked before minutes of training: the output folder,
    the domains, the merge method and every distill config the run will use (including --set overrides)."""
    from edgeseg.data.synthetic import get_style
    from edgeseg.merge.methods import REGISTRY
    from edgeseg.preflight import check_output_dir
    from edgeseg.uda.config import validate

    check_output_dir(cfg.out)
    for domain in cfg.domains:
        get_style(domain)
    usable = [name for name, m in REGISTRY.items() if not m.needs_base]  # the run has no --base to give
    if cfg.merge_method not in usable:
        raise ConfigError(f"--method '{cfg.merge_method}': quickstart merges with one of {', '.join(usable)}")
    data_root = Path(cfg.out) / "synthetic"
    validate(_distill_config(cfg, data_root, "source_only", cfg.domains[0], None))
    for domain in cfg.domains:
        validate(_distill_config(cfg, data_root, "duda", domain, Path(cfg.out) / "init.safetensors"))


def run_quickstart(
    cfg: QuickstartConfig,
    log: Callable[[str], None] = LOG.info,
    progress_bar: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """`progress_bar(label)`: a context manager yielding update(done, total, description), e.g.
    edgeseg.cli.progress.progress_bar; shown while the domain students train in parallel."""
    from edgeseg.io_utils import removed_on_failure

    out = Path(cfg.out)
    check_quickstart(cfg)
    # a run that fails before any training finished leaves no folder; one with trained runs is kept (re-running
    # quickstart in the same folder resumes them)
    with removed_on_failure(out, keep=_has_trained_runs):
        return _run_quickstart(cfg, out, log, progress_bar)


def _has_trained_runs(out: Path) -> bool:
    runs = out / "runs"
    return any(runs.glob("*/checkpoint.safetensors")) or any(runs.glob("*/student.safetensors"))


def _run_quickstart(
    cfg: QuickstartConfig, out: Path, log: Callable[[str], None], progress_bar: Callable[[str], Any] | None
) -> dict[str, Any]:
    from edgeseg.bench.core import BenchConfig, run_benchmark
    from edgeseg.bench.runner import RunPlan
    from edgeseg.demo.app import DemoConfig, run_demo
    from edgeseg.deploy.export.merge_export import MergeExportConfig, merge_and_export
    from edgeseg.io_utils import write_json_atomic, write_text_atomic
    from edgeseg.merge.evaluation import domain_datasets, evaluate_checkpoints
    from edgeseg.uda.data_setup import ensure_synthetic

    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "synthetic"
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def step(n: int, text: str) -> float:
        log(f"[{n}/{STEPS}] {text}")
        return time.perf_counter()

    t = step(1, f"rendering the synthetic benchmark (source + {', '.join(cfg.domains)}) into {data_root}")
    init_cfg = _distill_config(cfg, data_root, "source_only", cfg.domains[0], None)
    ensure_synthetic(init_cfg, data_root, ["source", *cfg.domains], log)
    size = tuple(init_cfg.synthetic.size)
    timings["data_s"] = time.perf_counter() - t

    t = step(2, "training the shared initialisation on labelled source images (source-only baseline)")
    runs = out / "runs"
    init = _distill_once(init_cfg, runs / "init_source_only", log)
    timings["init_s"] = time.perf_counter() - t

    t = step(3, f"adapting one student per target domain with DUDA, all from the shared init: {cfg.domains}")
    jobs = {d: (_distill_config(cfg, data_root, "duda", d, init), runs / f"duda_{d}") for d in cfg.domains}
    if cfg.jobs > 1:
        import contextlib

        bar = progress_bar("DUDA students") if progress_bar else contextlib.nullcontext(None)
        with bar as update:
            students = _distill_parallel(jobs, cfg.jobs, log, update)
    else:
        students = {d: _distill_once(dcfg, run_dir, log) for d, (dcfg, run_dir) in jobs.items()}
    timings["distill_s"] = time.perf_counter() - t

    t = step(4, f"merging ({cfg.merge_method}), exporting ONNX FP32 + INT8, checking parity, evaluating")
    calib = _calibration_dir(data_root, cfg.domains)
    deploy = merge_and_export(
        [students[d] for d in cfg.domains],
        out / "deploy",
        MergeExportConfig(
            method=cfg.merge_method,
            size=size,
            eval_data=data_root,
            domains=cfg.domains,
            int8=True,
            calib_dir=calib,
        ),
        log=log,
    )
    datasets = domain_datasets(data_root, list(cfg.domains))
    init_scores = evaluate_checkpoints([init], datasets)[0].to_json()
    init_scores["name"] = "source only (shared init)"
    scores = deploy["evaluation"]["scores"]
    for domain, score in zip(cfg.domains, scores, strict=False):  # the inputs come first, in domain order
        score["name"] = f"DUDA student adapted to {domain}"
    scores[len(cfg.domains)]["name"] = f"merged ({cfg.merge_method}), PyTorch"
    timings["merge_export_s"] = time.perf_counter() - t

    t = step(5, "benchmarking the exported models (ONNX Runtime CPU, interleaved)")
    onnx_files = [Path(p) for p in deploy["artifacts"]["onnx"]]
    bench = run_benchmark(
        BenchConfig(
            models=onnx_files,
            backends=("onnxruntime-cpu",),
            threads=cfg.threads,
            plan=RunPlan(warmup_iters=20, iters=cfg.bench_iters),
        )
    )
    write_json_atomic(out / "bench.json", bench)
    timings["bench_s"] = time.perf_counter() - t

    t = step(6, "running the demo headless on a synthetic drive video (recording demo.mp4)")
    drive = render_drive_video(out / "drive.mp4", cfg.domains, cfg.demo_frames, size, cfg.seed)
    stats = run_demo(
        DemoConfig(
            model=str(onnx_files[0]),
            source=str(drive),
            backend="onnxruntime-cpu",
            headless=True,
            record=out / "demo.mp4",
            stats_path=out / "demo_stats.json",
        )
    )
    timings["demo_s"] = time.perf_counter() - t

    t = step(7, "writing pictures and the report")
    grid = prediction_grid(onnx_files[0], data_root, cfg.domains, out / "predictions.png")
    timings["report_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all
    report = {
        "domains": list(cfg.domains),
        "merge_method": cfg.merge_method,
        "input_size": list(size),
        "scores": [init_scores, *deploy["evaluation"]["scores"]],
        "exports": {name: _export_summary(e) for name, e in deploy["exports"].items()},
        "latency": [_latency_summary(r) for r in bench["results"]],
        "bench_warnings": bench["warnings"],
        "demo": _demo_summary(stats),
        "artifacts": {
            "merged": deploy["artifacts"]["checkpoint"],
            "onnx": deploy["artifacts"]["onnx"],
            "students": {d: str(p) for d, p in students.items()},
            "init": str(init),
            "predictions": grid.name,
            "demo_video": "demo.mp4",
            "drive_video": drive.name,
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", to_markdown(report))
    log(f"done in {timings['total_s'] / 60:.1f} min: {out / 'report.md'}")
    return report


def _export_summary(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("precision", "parity", "agreement", "max_abs_diff", "size_mb", "file_mb")
    return {k: e[k] for k in keys if k in e}


def _latency_summary(r: dict[str, Any]) -> dict[str, Any]:
    lat = r["latency_ms"]
    return {
        "model": Path(r["model"]).name,
        "backend": r["backend"],
        "input_size": r["input_size"],
        "median_ms": lat["median"],
        "p90_ms": lat["p90"],
        "cv": lat["cv"],
        "fps": r["fps"],
        "gmacs": (r.get("graph") or {}).get("gmacs"),
    }


def _demo_summary(stats: Any) -> dict[str, Any]:
    keys = (
        "frames_read",
        "frames_processed",
        "frames_recorded",
        "frames_dropped",
        "end_to_end_fps",
        "inference_fps",
        "ended_by",
    )
    data = stats.to_dict()
    return {k: data[k] for k in keys if k in data}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def to_markdown(r: dict[str, Any]) -> str:
    domains = r["domains"]
    h, w = r["input_size"]
    lines = [
        "# edgeseg quickstart report",
        "",
        f"Synthetic benchmark, labelled `source` -> unlabelled targets {', '.join(f'`{d}`' for d in domains)}, "
        f"images {h}x{w}. One small student adapted per target with DUDA from a shared source-only init, then "
        f"merged ({r['merge_method']}) without data and exported to ONNX.",
        "",
        "## Per-domain mIoU (val split)",
        "",
        "| model | " + " | ".join(domains) + " | harmonic mean |",
        "|---|" + "---:|" * (len(domains) + 1),
    ]
    for s in r["scores"]:
        cells = [_pct(s["miou"].get(d)) for d in domains]
        lines.append(f"| {s['name']} | " + " | ".join(cells) + f" | {_pct(s['harmonic_mean'])} |")
    lines += [
        "",
        "## Latency (ONNX Runtime, CPU, this machine)",
        "",
        "| model | backend | input | median ms | p90 ms | CV | FPS | GMACs |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in r["latency"]:
        gm = "n/a" if x["gmacs"] is None else f"{x['gmacs']:.3f}"
        lines.append(
            f"| {x['model']} | {x['backend']} | {x['input_size'][0]}x{x['input_size'][1]} | "
            f"{x['median_ms']:.2f} | {x['p90_ms']:.2f} | {x['cv']:.1%} | {x['fps']:.1f} | {gm} |"
        )
    lines += [f"- {w}" for w in r["bench_warnings"]]
    d = r["demo"]
    lines += [
        "",
        "## Demo",
        "",
        f"`edgeseg demo` ran headless on `{r['artifacts']['drive_video']}` and recorded "
        f"[`{r['artifacts']['demo_video']}`]({r['artifacts']['demo_video']}); stats: "
        + ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in d.items()
            if not isinstance(v, dict)
        ),
        "",
        "## Predictions (input | merged model, ONNX FP32 | ground truth)",
        "",
        f"![predictions]({r['artifacts']['predictions']})",
        "",
        "## Timings",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {k.removesuffix('_s')} | {v} |" for k, v in r["timings_s"].items()]
    lines += [
        "",
        "Artifacts: merged checkpoint `"
        + Path(r["artifacts"]["merged"]).name
        + "`, ONNX "
        + ", ".join(f"`{Path(p).name}`" for p in r["artifacts"]["onnx"])
        + " (in `deploy/`).",
        "",
    ]
    return "\n".join(lines)
