"""Command: `edgeseg quickstart`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.validate import ranged, seed_option


def quickstart(
    out: Annotated[Path, typer.Option(help="folder for everything the run writes")] = Path(
        "edgeseg-quickstart"
    ),
    domains: Annotated[str, typer.Option(help="target domains, comma-separated (>= 2)")] = "city,night",
    iters: Annotated[
        int, ranged(help="distill iterations per run (shared init, then each domain)", lo=10, hi=1_000_000)
    ] = 300,
    method: Annotated[str, typer.Option(help="merge method: bn, linear, layerwise, backbone, ...")] = "bn",
    seed: Annotated[int, seed_option("seed for data and training")] = 0,
    threads: Annotated[
        int | None, ranged(help="CPU threads for training and inference", lo=1, hi=1024)
    ] = None,
    jobs: Annotated[
        int, ranged(help="domain students trained at once (one process and thread each)", lo=1, hi=64)
    ] = 2,
    set_: Annotated[list[str] | None, typer.Option("--set", help="extra distill setting key=value")] = None,
) -> None:
    """Run the whole pipeline on the built-in synthetic benchmark and write OUT/report.md.

    Renders data, distils one DUDA student per target domain from a shared init, merges them, exports ONNX
    (FP32 + INT8), benchmarks it and runs the demo headless. About 8 minutes on 2 CPU cores (the domain
    students train in parallel).

    Examples:
      edgeseg quickstart
      edgeseg quickstart --out runs/qs --domains city,night,fog --iters 200
    """
    from edgeseg.cli.progress import progress_bar
    from edgeseg.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(
        out=out,
        domains=tuple(d.strip() for d in domains.split(",") if d.strip()),
        iters=iters,
        merge_method=method,
        seed=seed,
        threads=threads,
        jobs=jobs,
        overrides=tuple(set_ or ()),
    )
    run_quickstart(cfg, log=typer.echo, progress_bar=progress_bar)


def register(app: typer.Typer) -> None:
    app.command()(quickstart)
