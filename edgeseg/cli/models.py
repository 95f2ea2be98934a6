"""Commands: `edgeseg convert`, `edgeseg info`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.validate import ranged
from edgeseg.errors import ConfigError
from edgeseg.sizes import parse_size


def convert(
    src: Annotated[
        Path, typer.Argument(help="mit_bX.pth, a Hugging Face folder, or an mmseg/DAFormer/MIC .pth")
    ],
    out: Annotated[Path, typer.Argument(help="output .safetensors")],
    num_classes: Annotated[
        int | None,
        ranged(help="class count; a different one re-initialises the classifier (reported)", lo=1, hi=1000),
    ] = None,
    submodel: Annotated[
        str | None, typer.Option(help="for DAFormer/MIC checkpoints: model | ema_model")
    ] = None,
) -> None:
    """Import foreign weights strictly into an edgeseg checkpoint.

    Examples:
      edgeseg convert mit_b5.pth init/mit_b5.safetensors
      edgeseg convert ./segformer-b0-finetuned-cityscapes-1024-1024 b0_city.safetensors
      edgeseg convert daformer_gta2cs.pth teacher.safetensors --submodel ema_model
    """
    from edgeseg.models.convert import convert_checkpoint
    from edgeseg.preflight import check_output_file

    check_output_file(out, inputs=[src])
    report = convert_checkpoint(src, out, num_classes=num_classes, submodel=submodel)
    typer.echo(
        f"converted {report.source_format} -> {report.out}: {report.arch} ({report.kind}, "
        f"{report.num_classes} classes, {report.num_tensors} tensors, all source keys mapped)"
    )
    for item in report.dropped:
        typer.echo(f"  dropped: {item}")
    for sub in report.skipped_submodels:
        typer.echo(f"  skipped sub-model: {sub}")


def info(
    ckpt: Annotated[Path | None, typer.Argument(help="edgeseg .safetensors checkpoint")] = None,
    size: Annotated[str, typer.Option(help="input HxW for the operation count")] = "512x1024",
    arch: Annotated[
        str | None, typer.Option(help="describe a registry architecture instead of a file")
    ] = None,
    list_archs: Annotated[bool, typer.Option("--list", help="list registered architectures")] = False,
    backends: Annotated[
        bool,
        typer.Option(
            "--backends",
            help="list the runtime backends, the model files each runs and whether it is installed here",
        ),
    ] = False,
) -> None:
    """Print a model's architecture, classes, parameter count, GMACs/GFLOPs and provenance.

    Examples:
      edgeseg info student.safetensors --size 512x1024
      edgeseg info --arch segformer_b0
      edgeseg info --list
      edgeseg info --backends
    """
    if backends:  # torch-free: works on a device image
        from edgeseg.deploy.runtime.backends import format_backends

        typer.echo(format_backends())
        return
    from edgeseg.models.info import describe_arch, describe_checkpoint, format_description
    from edgeseg.models.registry import list_models

    if list_archs:
        typer.echo("\n".join(list_models()))
        return
    h, w = parse_size(size)
    if arch:
        desc = describe_arch(arch, h, w)
    elif ckpt is not None:
        desc = describe_checkpoint(ckpt, h, w)
    else:
        raise ConfigError("give a checkpoint, --arch NAME or --list")
    typer.echo(format_description(desc))


def register(app: typer.Typer) -> None:
    app.command()(convert)
    app.command()(info)
