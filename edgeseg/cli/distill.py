"""Command: `edgeseg distill` (DUDA and the self-training / distillation baselines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def distill(
    preset: Annotated[
        str | None, typer.Option(help="built-in preset (default: synthetic); see --list-presets")
    ] = None,
    config: Annotated[Path | None, typer.Option(help='a TOML config file (may say base = "preset")')] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default: runs/distill-<preset>)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key: section.key=value (repeatable)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the interrupted run in --out exactly")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print report.json to stdout")] = False,
    show_config: Annotated[bool, typer.Option(help="print the resolved config as TOML and exit")] = False,
    list_presets: Annotated[bool, typer.Option(help="list the built-in presets and exit")] = False,
) -> None:
    """Adapt a small student to an unlabelled target domain (DUDA: large EMA teacher -> small student).

    With no options it runs the built-in synthetic benchmark (source -> city), renders the data into the
    output folder on first use, and prints the student's target mIoU next to a source-only baseline.

    Examples:
      edgeseg distill
      edgeseg distill --set iters=300 --set duda.kd=kl --out runs/kl
      edgeseg distill --preset gta2cityscapes --set data.source_root=/data/gta \\
          --set data.target_root=/data/cityscapes \\
          --set models.large_init=init/mit_b5.safetensors --set models.small_init=init/mit_b0.safetensors
      edgeseg distill --preset synthetic --set method=self_training --out runs/st
      edgeseg distill --out runs/x --resume
      torchrun --nproc_per_node 4 -m edgeseg distill --preset gta2cityscapes ...
    """
    from edgeseg.uda.config import list_presets as presets
    from edgeseg.uda.config import load_config, to_toml

    if list_presets:
        typer.echo("\n".join(presets()))
        return
    cfg = load_config(preset, config, list(set_ or []))
    if show_config:
        typer.echo(to_toml(cfg), nl=False)
        return
    from edgeseg.uda.api import run_distill

    out_dir = out or Path("runs") / f"distill-{cfg.name}"
    from edgeseg.cli.progress import progress_bar

    with progress_bar(f"distill {cfg.method}", enabled=cfg.train.progress) as update:
        result = run_distill(
            cfg, out_dir, resume=resume, log=lambda m: typer.echo(m, err=True), progress=update
        )
    if not result.report.get("student"):
        return  # a non-zero rank under torchrun: rank 0 reports
    rep = result.report
    if json_out:
        typer.echo(json.dumps({k: v for k, v in rep.items() if k != "config"}, indent=2))
        return
    typer.echo(
        f"target domain {rep['target']} ({cfg.method}, {cfg.models.small} student, {cfg.iters} iterations)"
    )
    if rep.get("source_only"):
        typer.echo(f"  source-only {cfg.models.small}:  mIoU {_pct(rep['source_only']['target_miou'])}")
    gain = rep.get("gain_over_source_only")
    typer.echo(
        f"  adapted student:     mIoU {_pct(rep['student']['target_miou'])}"
        + (f"  ({100 * gain:+.2f})" if gain is not None else "")
    )
    if rep.get("teacher"):
        typer.echo(f"  large teacher ({cfg.models.large}): mIoU {_pct(rep['teacher']['target_miou'])}")
    typer.echo(
        f"  wall time {rep['wall_time_s']:.0f} s; student: {result.student_path}; report: "
        f"{result.out_dir / 'report.json'}"
    )


def register(app: typer.Typer) -> None:
    app.command()(distill)
