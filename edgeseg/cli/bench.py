"""Command: `edgeseg bench` - latency, throughput, memory, GMACs and (on Jetson) power of model files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeseg.cli.validate import ranged
from edgeseg.deploy.runtime.backends import backend_help, model_suffixes
from edgeseg.errors import ConfigError

if TYPE_CHECKING:
    from edgeseg.bench.core import BenchConfig


def bench(
    models: Annotated[list[Path], typer.Argument(help=f"model files ({', '.join(model_suffixes())})")],
    backend: Annotated[list[str] | None, typer.Option(help=f"repeatable; {backend_help()}")] = None,
    size: Annotated[
        list[str] | None,
        typer.Option(help="input HxW, repeatable (default: the model's fixed size, else 512x1024)"),
    ] = None,
    batch: Annotated[int, ranged(help="frames per inference call", lo=1, hi=256)] = 1,
    warmup: Annotated[
        int | None, ranged(help="warm-up iterations per case (default 5)", lo=0, hi=100000)
    ] = None,
    warmup_s: Annotated[
        float | None, ranged("--warmup-s", help="warm up for S seconds instead", lo=0, hi=3600)
    ] = None,
    iters: Annotated[
        int | None, ranged(help="measured iterations per case (default 50)", lo=2, hi=1000000)
    ] = None,
    duration_s: Annotated[
        float | None,
        ranged(
            "--duration-s",
            help="measure for S seconds instead (shared by all cases)",
            lo=0,
            hi=86400,
            lo_open=True,
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="e2e: preprocess+inference+postprocess with a stage breakdown; infer: inference only"
        ),
    ] = "e2e",
    power: Annotated[
        bool, typer.Option("--power", help="Jetson: sample the input rail with tegrastats")
    ] = False,
    power_s: Annotated[
        float,
        ranged(
            "--power-s", help="seconds of back-to-back runs per case for --power", lo=0, hi=3600, lo_open=True
        ),
    ] = 5.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the results as JSON (schema: docs/bench.md)")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="write a latency plot (needs matplotlib)")] = None,
    threads: Annotated[
        int | None,
        ranged(help="CPU backends: intra-op threads (default: the runtime's own choice)", lo=1, hi=1024),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Benchmark model files: latency statistics, FPS, stage breakdown, memory, GMACs, device facts.

    Several models, backends and sizes given together are measured interleaved (round-robin per
    iteration) so machine drift hits them equally.

    Examples:
      edgeseg bench student.onnx --json bench.json
      edgeseg bench b0.onnx b1.onnx --size 512x1024 --size 1024x2048 --plot latency.png
      edgeseg bench model.engine --backend tensorrt --duration-s 30 --power
    """
    import importlib.util

    from edgeseg.bench.core import BenchConfig
    from edgeseg.bench.runner import RunPlan
    from edgeseg.preflight import check_outputs
    from edgeseg.sizes import parse_size

    check_outputs(files=[json_out, plot], inputs=models)
    if warmup is not None and warmup_s is not None:
        raise ConfigError("give --warmup or --warmup-s, not both")
    if iters is not None and duration_s is not None:
        raise ConfigError("give --iters or --duration-s, not both")
    if mode not in ("e2e", "infer"):
        raise ConfigError(f"--mode must be e2e or infer, got '{mode}'")
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("--plot needs matplotlib, which is not installed: pip install matplotlib")
    if duration_s is not None and duration_s <= 0 or warmup_s is not None and warmup_s < 0:
        raise ConfigError("--duration-s must be > 0 and --warmup-s >= 0")
    plan = RunPlan(
        warmup_iters=None if warmup_s is not None else (5 if warmup is None else warmup),
        warmup_s=warmup_s,
        iters=None if duration_s is not None else (50 if iters is None else iters),
        duration_s=duration_s,
        mode=mode,
    )
    backends = backend or ["auto"]
    sizes = [parse_size(s) for s in size or []]
    # the command as resolved (defaults filled in), so a result file says exactly how to reproduce it
    command = [
        "edgeseg",
        "bench",
        *map(str, models),
        *[a for b in backends for a in ("--backend", b)],
        *[a for s in sizes for a in ("--size", f"{s[0]}x{s[1]}")],
        "--batch",
        str(batch),
        "--mode",
        mode,
        *(["--warmup-s", str(warmup_s)] if warmup_s is not None else ["--warmup", str(plan.warmup_iters)]),
        *(["--duration-s", str(duration_s)] if duration_s is not None else ["--iters", str(plan.iters)]),
        *(["--threads", str(threads)] if threads else []),
        *(["--power", "--power-s", str(power_s)] if power else []),
    ]
    config = BenchConfig(
        models=models,
        backends=backends,
        sizes=sizes,
        batch=batch,
        plan=plan,
        power=power,
        power_s=power_s,
        threads=threads,
        command=command,
    )
    report = _run_with_progress(config, progress)

    from rich.console import Console
    from rich.markup import escape

    from edgeseg.bench.report import render_tables

    out = Console()
    for table in render_tables(report):
        out.print(table)
    err = Console(stderr=True)
    for warning in report["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    if json_out is not None:
        from edgeseg.io_utils import write_json_atomic

        write_json_atomic(json_out, report)
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        from edgeseg.bench.report import write_plot

        typer.echo(f"wrote {write_plot(report, plot)}")


def _run_with_progress(config: BenchConfig, show: bool) -> dict[str, Any]:
    """run_benchmark with a rich progress bar on stderr (warm-up and measurement, rounds or seconds)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgeseg.bench.core import run_benchmark

    if not show:
        return run_benchmark(config)
    plan = config.plan
    totals = {
        "open": config.num_cases,
        "warmup": plan.warmup_iters if plan.warmup_iters is not None else plan.warmup_s,
        "measure": plan.iters if plan.iters is not None else plan.duration_s,
    }
    by_seconds = {"open": False, "warmup": plan.warmup_iters is None, "measure": plan.iters is None}
    units = {
        "open": "cases",
        "warmup": "s" if by_seconds["warmup"] else "rounds",
        "measure": "s" if by_seconds["measure"] else "rounds",
    }
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks = {
            phase: bar.add_task(f"{phase} ({units[phase]})", total=max(totals[phase] or 0, 1))
            for phase in ("open", "warmup", "measure")
        }

        def on_round(phase: str, rounds: int, elapsed: float) -> None:
            bar.update(
                tasks[phase], completed=min(elapsed if by_seconds[phase] else rounds, totals[phase] or 1)
            )

        return run_benchmark(config, on_round=on_round)


def register(app: typer.Typer) -> None:
    app.command()(bench)
