"""Commands: `edgeseg pretrain` (the synthetic world's ImageNet) and `edgeseg weights list|verify|pack`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.validate import ranged, seed_option
from edgeseg.data.corpora import CORPORA


def pretrain(
    arch: Annotated[str, typer.Option(help="registered model whose encoder is pretrained")] = "segformer_b1",
    out: Annotated[
        Path, typer.Option(help="run folder (encoder.safetensors, report.json, checkpoint)")
    ] = Path("runs/pretrain"),
    iters: Annotated[int, ranged(help="training iterations", lo=1, hi=10_000_000)] = 3000,
    batch_size: Annotated[int, ranged(help="images per iteration", lo=1, hi=1024)] = 8,
    size: Annotated[str, typer.Option(help="corpus image size HxW (multiples of 32)")] = "96x192",
    lr: Annotated[
        float, ranged(help="peak AdamW learning rate (warm-up, cosine decay)", lo=0, hi=1, lo_open=True)
    ] = 6e-4,
    seed: Annotated[int, seed_option("corpus stream and initialisation seed")] = 0,
    threads: Annotated[int, ranged(help="torch intra-op threads (0 = torch's default)", lo=0, hi=1024)] = 1,
    augment: Annotated[
        str,
        typer.Option(
            help="training-image augmentation: none | photometric (colour jitter, "
            "greyscale, blur; SimCLR-style)"
        ),
    ] = "none",
    corpus: Annotated[
        str,
        typer.Option(
            help="pretraining corpus: "
            + " | ".join(f"{c.name} ({c.summary})" for c in CORPORA.values())
            + "; the shipped encoders were made on things"
        ),
    ] = "shapes",
    resume: Annotated[bool, typer.Option(help="continue the interrupted run in --out exactly")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print report.json to stdout")] = False,
) -> None:
    """Pretrain an MiT encoder on a generated corpus (no street layout, no target style; see --corpus).

    The encoder it writes is initial weights for `edgeseg distill` (models.large_init / models.small_init) and
    what `edgeseg weights pack` ships inside the package.

    Examples:
      edgeseg pretrain --arch segformer_b1 --iters 2500 --corpus things --out runs/pretrain_b1
      edgeseg pretrain --arch segformer_b0_d1 --iters 2500 --corpus things --out runs/pretrain_b0_d1
      edgeseg pretrain --arch segformer_b1 --iters 2500 --corpus things --out runs/pretrain_b1 --resume
    """
    from edgeseg.cli.progress import progress_bar
    from edgeseg.data.synthetic import parse_size
    from edgeseg.io_utils import removed_on_failure
    from edgeseg.preflight import check_output_dir
    from edgeseg.pretrain import CHECKPOINT, PretrainConfig, run_pretrain

    check_output_dir(out)
    cfg = PretrainConfig(
        arch=arch,
        iters=iters,
        batch_size=batch_size,
        size=parse_size(size),
        lr=lr,
        seed=seed,
        threads=threads,
        augment=augment,
        corpus=corpus,
    )
    # the canonical, complete command (every setting spelled out): what the manifest records to regenerate it
    command = "edgeseg " + shlex.join(
        [
            "pretrain",
            "--arch",
            arch,
            "--iters",
            str(iters),
            "--batch-size",
            str(batch_size),
            "--size",
            size,
            "--lr",
            f"{lr:g}",
            "--seed",
            str(seed),
            *(["--augment", augment] if augment != "none" else []),
            *(["--corpus", corpus] if corpus != "shapes" else []),
            "--out",
            str(out),
        ]
    )
    # a run that fails before its first checkpoint leaves no folder behind; one with a checkpoint is kept (--resume)
    with (
        removed_on_failure(out, keep=lambda p: (p / CHECKPOINT).is_file()),
        progress_bar(f"pretrain {arch}") as update,
    ):
        result = run_pretrain(
            cfg, out, resume=resume, command=command, log=lambda m: typer.echo(m, err=True), progress=update
        )
    if json_out:
        typer.echo(json.dumps(result.report, indent=2))


weights_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Initial weights shipped in the package (`builtin:<name>` in configs).",
)


@weights_app.command("list")
def list_weights(
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """List the shipped initial weights with their provenance (manifest.json).

    Example:
      edgeseg weights list
    """
    from edgeseg.weights import SHIPPED_DIR, read_manifest

    manifest = read_manifest()
    if json_out:
        typer.echo(json.dumps(manifest, indent=2))
        return
    for name, e in manifest["weights"].items():
        typer.echo(
            f"builtin:{name}  {e['arch']} encoder, {e['params'] / 1e6:.2f} M params, {e['storage']}, "
            f"{e['bytes'] / 1e6:.1f} MB, pretrained {e['wall_time_s']:.0f} s on {e['machine'].get('cpu', '?')}"
        )
        typer.echo(f"    {e['command']}")
    typer.echo(f"({SHIPPED_DIR})")


@weights_app.command("verify")
def verify_weights() -> None:
    """Check every shipped file against its manifest sha256 (non-zero exit if any fails).

    Example:
      edgeseg weights verify
    """
    from edgeseg.weights import verify_all

    result = verify_all()
    for name, status in result.items():
        typer.echo(f"builtin:{name}: {status}")
    if any(v != "ok" for v in result.values()):
        raise typer.Exit(1)


@weights_app.command("pack")
def pack_weights(
    run: Annotated[Path, typer.Argument(help="a finished `edgeseg pretrain` run folder")],
    name: Annotated[str, typer.Option(help="shipped name, used as builtin:<name>")],
    dest: Annotated[
        Path | None, typer.Option(help="folder to pack into (default: the package's shipped/)")
    ] = None,
) -> None:
    """Store a pretraining run's encoder (int8 per-channel) in the package and record it in the manifest.

    Example:
      edgeseg weights pack runs/pretrain_b1 --name mit_b1_synth
    """
    from edgeseg.preflight import check_output_dir
    from edgeseg.weights import SHIPPED_DIR, pack_run

    check_output_dir(dest or SHIPPED_DIR, inputs=[run])
    entry = pack_run(run, name, dest or SHIPPED_DIR)
    typer.echo(
        f"packed builtin:{name}: {entry['file']} ({entry['bytes'] / 1e6:.1f} MB, sha256 "
        f"{entry['sha256'][:12]}..., max int8 error {100 * entry['max_rel_quant_error']:.2f}% of range)"
    )


def register(app: typer.Typer) -> None:
    app.command()(pretrain)
    app.add_typer(weights_app, name="weights")
