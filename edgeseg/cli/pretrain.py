"""Command: `edgeseg pretrain` (the synthetic world's ImageNet: generic-corpus encoder pretraining)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def pretrain(
    arch: Annotated[str, typer.Option(help="registered model whose encoder is pretrained")] = "segformer_b1",
    out: Annotated[Path, typer.Option(help="run folder (encoder.safetensors, report.json, checkpoint)")] = Path(
        "runs/pretrain"),
    iters: Annotated[int, typer.Option(help="training iterations")] = 3000,
    batch_size: Annotated[int, typer.Option(help="images per iteration")] = 8,
    size: Annotated[str, typer.Option(help="corpus image size HxW (multiples of 32)")] = "96x192",
    lr: Annotated[float, typer.Option(help="peak AdamW learning rate (warm-up, cosine decay)")] = 6e-4,
    seed: Annotated[int, typer.Option(help="corpus stream and initialisation seed")] = 0,
    threads: Annotated[int, typer.Option(help="torch intra-op threads (0 = torch's default)")] = 1,
    resume: Annotated[bool, typer.Option(help="continue the interrupted run in --out exactly")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print report.json to stdout")] = False,
) -> None:
    """Pretrain an MiT encoder on the generic shapes-and-textures corpus (no street scenes, no target styles).

    The encoder it writes is initial weights for `edgeseg distill` (models.large_init / models.small_init) and
    what `edgeseg weights pack` ships inside the package.

    Examples:
      edgeseg pretrain --arch segformer_b1 --iters 3000 --out runs/pretrain_b1
      edgeseg pretrain --arch segformer_b0_d1 --iters 3000 --out runs/pretrain_b0_d1
      edgeseg pretrain --arch segformer_b1 --iters 3000 --out runs/pretrain_b1 --resume
    """
    from edgeseg.cli.progress import progress_bar
    from edgeseg.data.synthetic import parse_size
    from edgeseg.pretrain import PretrainConfig, run_pretrain

    cfg = PretrainConfig(arch=arch, iters=iters, batch_size=batch_size, size=parse_size(size), lr=lr, seed=seed,
                         threads=threads)
    argv = [a for a in sys.argv[1:] if a != "--resume"]
    command = "edgeseg " + shlex.join(argv) if argv and argv[0] == "pretrain" else ""
    with progress_bar(f"pretrain {arch}") as update:
        result = run_pretrain(cfg, out, resume=resume, command=command, log=lambda m: typer.echo(m, err=True),
                              progress=lambda d, t, s: update(d, t, s))
    if json_out:
        typer.echo(json.dumps(result.report, indent=2))


def register(app: typer.Typer) -> None:
    app.command()(pretrain)
