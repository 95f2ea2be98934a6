"""Commands: `edgeseg export`, `edgeseg build-engine`, `edgeseg merge-export`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli import merge as merge_cli
from edgeseg.cli.validate import ranged
from edgeseg.errors import ConfigError


@contextlib.contextmanager
def _status(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A rich spinner on stderr that shows the current step; every step is also printed as a line."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled:
        yield lambda msg: console.print(msg, highlight=False, soft_wrap=True)
        return
    with console.status("starting") as status:

        def log(msg: str) -> None:
            console.print(msg, highlight=False, soft_wrap=True)
            status.update(msg)

        yield log


def _size(text: str | None) -> tuple[int, int] | None:
    from edgeseg.sizes import parse_size

    return parse_size(text) if text else None


def _write_json(path: Path | None, obj: Any) -> None:
    if path is not None:
        from edgeseg.io_utils import write_json_atomic

        write_json_atomic(path, obj)


def export(
    ckpt: Annotated[Path, typer.Argument(help="edgeseg .safetensors checkpoint")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="ONNX file to write (OpenVINO IR .xml + .bin with --for openvino)"),
    ],
    size: Annotated[str | None, typer.Option(help="input HxW (default: the target's, else 512x1024)")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="dynamic batch, height and width")] = False,
    output: Annotated[
        str,
        typer.Option(
            help="labels (uint8, input resolution, argmax in the graph) | logits | probs (1/4 resolution)"
        ),
    ] = "labels",
    preprocess: Annotated[
        bool, typer.Option("--preprocess", help="graph takes uint8 BGR HxWx3 frames and normalises itself")
    ] = False,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="FP16 graph (LayerNorm/Softmax/reductions stay FP32)")
    ] = False,
    bf16: Annotated[
        bool,
        typer.Option(
            "--bf16",
            help="run in OpenVINO's bf16 inference precision (with --for "
            "openvino; checked in bf16 on this CPU)",
        ),
    ] = False,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="INT8 QDQ graph (needs --calib); for ONNX Runtime unless "
            "--int8-for tensorrt; with --for openvino: NNCF INT8 IR "
            "(--out model.xml)",
        ),
    ] = False,
    shaped_for: Annotated[
        str,
        typer.Option(
            "--for",
            help="the runtime the graph is laid out for: onnxruntime | openvino (recorded in the metadata)",
        ),
    ] = "onnxruntime",
    int8_for: Annotated[
        str | None,
        typer.Option(
            help="INT8 flavour: onnxruntime (uint8 activations) | tensorrt "
            "(symmetric int8, float biases; default for a TensorRT "
            "--target)"
        ),
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(help="folder of target-domain images: INT8 calibration and parity-check images"),
    ] = None,
    calib_images: Annotated[
        int | None,
        ranged(
            help="calibration images used (spread evenly; default: the target's, else 32)", lo=1, hi=100000
        ),
    ] = None,
    calib_method: Annotated[str, typer.Option(help="INT8 ranges: minmax | entropy | percentile")] = "minmax",
    opset: Annotated[int, ranged(help="ONNX opset", lo=17, hi=30)] = 17,
    batch: Annotated[int | None, ranged(help="static batch size (default 1)", lo=1, hi=1024)] = None,
    min_agreement: Annotated[
        float | None,
        ranged(
            help="fail below this label agreement with PyTorch "
            "(default 0.999 fp32, 0.995 fp16/bf16, 0.95 int8)",
            lo=0,
            hi=1,
        ),
    ] = None,
    parity_images: Annotated[int, ranged(help="images for the parity check", lo=0, hi=10000)] = 4,
    slim: Annotated[bool, typer.Option(help="clean the graph with onnxslim")] = True,
    target: Annotated[
        str | None,
        typer.Option(
            help="profile from export/targets/NAME.toml (size, precision, "
            "calibration size); flags override it"
        ),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON")] = None,
    progress: Annotated[bool, typer.Option(help="show a spinner on stderr")] = True,
) -> None:
    """Export a checkpoint to ONNX (opset 17), check parity with PyTorch, write it atomically.

    Examples:
      edgeseg export student.safetensors --out student.onnx --size 512x1024
      edgeseg export student.safetensors --out student_int8.onnx --int8 --calib data/synth/city/leftImg8bit/train
      edgeseg export student.safetensors --out student_int8_trt.onnx --int8 --int8-for tensorrt --calib frames/
      edgeseg export student.safetensors --out dyn.onnx --dynamic --output logits --preprocess
      edgeseg export student.safetensors --out student_ov.xml --for openvino --bf16
      edgeseg export student.safetensors --out student_ov_int8.xml --for openvino --int8 --calib frames/
    """
    from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx
    from edgeseg.deploy.targets import EXPORT_CALIB_IMAGES, setting
    from edgeseg.preflight import check_outputs

    if fp16 + bf16 + int8 > 1:
        raise ConfigError("choose one of --fp16, --bf16 and --int8")
    ir_bin = out.with_suffix(".bin") if out.suffix.lower() == ".xml" else None
    check_outputs(files=[out, ir_bin, json_out], inputs=[ckpt])
    profile = None
    if target is not None:
        from edgeseg.deploy.targets import load_target

        profile = load_target(target)
    precision = "fp16" if fp16 else "bf16" if bf16 else "int8" if int8 else None
    if precision is None:
        precision = (
            profile.precision if profile is not None and profile.runtime.startswith("onnxruntime") else "fp32"
        )
        if precision == "int8" and calib is None:
            raise ConfigError(f"target '{profile.name}' is INT8: give --calib DIR (target-domain images)")  # type: ignore[union-attr]
    cfg = ExportConfig(
        size=setting("input_size", _size(size), profile),
        dynamic=dynamic,
        output=output,
        preprocess=preprocess,
        precision=precision,
        calib_dir=calib,
        calib_images=setting("calib_images", calib_images, profile, EXPORT_CALIB_IMAGES),
        calib_method=calib_method,
        int8_for=int8_for or ("tensorrt" if profile and profile.runtime == "tensorrt" else "onnxruntime"),
        opset=opset,
        batch=setting("batch", batch, profile),
        min_agreement=min_agreement,
        parity_images=parity_images,
        slim=slim,
        shaped_for=shaped_for,
    )
    cfg.check_out(out)
    with _status(progress) as log:
        report = export_onnx(ckpt, out, cfg, log=log)
    typer.echo(
        f"wrote {report.out}: {report.precision}, input {report.input_shape} {report.input_dtype}, "
        f"output {report.output}, {report.nodes['final']} nodes, {report.file_bytes / 1e6:.1f} MB, "
        f"{report.seconds:.1f}s"
    )
    _write_json(json_out, report.to_json())


def build_engine_cmd(
    onnx_file: Annotated[Path, typer.Argument(help="ONNX file from `edgeseg export`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="engine file to write (+ OUT.json sidecar)")],
    fp16: Annotated[bool, typer.Option("--fp16", help="allow FP16 kernels")] = False,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="INT8: from a TensorRT Q/DQ graph (`edgeseg export --int8 "
            "--int8-for tensorrt`), or calibrated with --calib (< 11)",
        ),
    ] = False,
    calib: Annotated[Path | None, typer.Option(help="folder of target-domain calibration images")] = None,
    calib_images: Annotated[
        int | None, ranged(help="calibration images (default: the target's, else 256)", lo=1, hi=100000)
    ] = None,
    calib_cache: Annotated[
        Path | None, typer.Option(help="calibration cache file (default OUT.calib)")
    ] = None,
    workspace: Annotated[
        int | None,
        ranged(help="builder workspace in MB (default: the target's, else 1024)", lo=1, hi=1 << 20),
    ] = None,
    dla: Annotated[
        int | None, ranged(help="DLA core to run on, with GPU fallback (Jetson Xavier/Orin AGX)", lo=0, hi=15)
    ] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="timing cache file, read and updated")] = None,
    size: Annotated[
        str | None, typer.Option(help="HxW to optimise for (dynamic graphs; default: the target's)")
    ] = None,
    min_size: Annotated[
        str | None, typer.Option(help="smallest HxW the engine accepts (dynamic graphs)")
    ] = None,
    max_size: Annotated[
        str | None, typer.Option(help="largest HxW the engine accepts (dynamic graphs)")
    ] = None,
    batch: Annotated[int | None, ranged(help="batch size to optimise for", lo=1, hi=1024)] = None,
    target: Annotated[
        str | None, typer.Option(help="profile from export/targets/NAME.toml; flags override it")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON")] = None,
    progress: Annotated[bool, typer.Option(help="show a spinner on stderr")] = True,
) -> None:
    """Build a TensorRT engine ON THE DEVICE that will run it (engines are tied to the GPU and TensorRT
    version); writes OUT and the sidecar OUT.json the runtime checks before loading.

    Examples:
      edgeseg build-engine student.onnx --out student.engine --fp16 --timing-cache trt.cache
      edgeseg build-engine student.onnx --out student_int8.engine --int8 --calib frames/ --target orin-agx
    """
    from edgeseg.deploy.runtime.onnx_meta import read_onnx_file_meta
    from edgeseg.deploy.targets import setting
    from edgeseg.deploy.trt.build import EngineConfig, build_engine
    from edgeseg.preflight import check_outputs

    if fp16 and int8:
        raise ConfigError("choose --fp16 or --int8 (INT8 builds allow FP16 kernels too)")
    check_outputs(files=[out, json_out], inputs=[onnx_file])
    profile = None
    if target is not None:
        from edgeseg.deploy.targets import load_target

        profile = load_target(target)
        if profile.runtime != "tensorrt":
            raise ConfigError(
                f"target '{profile.name}' runs {profile.runtime}, not TensorRT; use "
                f"`edgeseg export --target {profile.name}` instead"
            )
    precision = "fp16" if fp16 else "int8" if int8 else None
    if precision is None:
        precision = profile.precision if profile else "fp32"
    onnx_meta = read_onnx_file_meta(str(onnx_file)) if onnx_file.is_file() else {}
    dynamic = onnx_meta.get("input_size") is None
    # a target's size only applies to dynamic graphs; a fixed graph keeps the size it was exported for
    opt = _size(size) or (profile.input_size if profile and dynamic else None)
    cfg = EngineConfig(
        precision=precision,
        calib_dir=calib,
        calib_images=setting("calib_images", calib_images, profile),
        calib_cache=calib_cache,
        workspace_mb=setting("workspace_mb", workspace, profile),
        dla_core=setting("dla_core", dla, profile),
        timing_cache=timing_cache,
        size=opt,
        min_size=_size(min_size),
        max_size=_size(max_size),
        batch=setting("batch", batch, profile),
    )
    with _status(progress) as log:
        report = build_engine(onnx_file, out, cfg, log=log)
    typer.echo(
        f"wrote {report.engine} ({report.precision}, TensorRT {report.tensorrt_version}, {report.device_name}, "
        f"{report.engine_bytes / 1e6:.1f} MB, {report.build_seconds:.0f}s) and {report.sidecar}"
    )
    _write_json(json_out, report.to_json())


def merge_export(
    inputs: Annotated[
        list[Path], typer.Argument(help="domain-adapted checkpoints (.safetensors), 2 or more")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    method: Annotated[str, typer.Option(help=merge_cli.METHOD_HELP)] = "bn",
    weights: Annotated[
        str | None, typer.Option(help="one weight per input, e.g. 0.5,0.5 (default equal)")
    ] = None,
    base: Annotated[Path | None, typer.Option(help=merge_cli.BASE_HELP)] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help=merge_cli.PARAM_HELP)] = None,
    size: Annotated[str, typer.Option(help="ONNX input HxW")] = "512x1024",
    eval_data: Annotated[
        Path | None, typer.Option(help="labelled data root to evaluate on (val split)")
    ] = None,
    domains: Annotated[
        str | None, typer.Option(help="comma-separated domains to evaluate, e.g. city,night")
    ] = None,
    dataset: Annotated[str, typer.Option(help="dataset reader for --eval-data")] = "synthetic",
    eval_limit: Annotated[int | None, ranged(help="evaluate on the first N images per domain", lo=1)] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="also an INT8 ONNX for ONNX Runtime CPU (needs --calib)")
    ] = False,
    calib: Annotated[
        Path | None, typer.Option(help="target-domain images: INT8 calibration + parity checks")
    ] = None,
    engine: Annotated[
        bool,
        typer.Option(
            "--engine",
            help="also build an FP16 TensorRT engine (when TensorRT is "
            "installed; engines are built on the device)",
        ),
    ] = False,
    parity_images: Annotated[int, ranged(help="images for each parity check", lo=0, hi=10000)] = 4,
    slim: Annotated[bool, typer.Option(help="clean the graphs with onnxslim")] = True,
    progress: Annotated[bool, typer.Option(help="show a spinner on stderr")] = True,
) -> None:
    """Merge domain students, evaluate, export (ONNX, optional INT8 / engine), write DIR/report.{json,md}.

    Examples:
      edgeseg merge-export city.safetensors night.safetensors fog.safetensors --method bn --out deploy/ \\
          --size 512x1024 --eval-data data/synth --domains city,night,fog --int8 --calib frames/
    """
    from edgeseg.deploy.export.merge_export import MergeExportConfig, merge_and_export
    from edgeseg.merge.evaluation import parse_domains
    from edgeseg.preflight import check_output_dir
    from edgeseg.sizes import parse_size

    check_output_dir(out, inputs=[*inputs, base])
    options = merge_cli.merge_options(method, weights, base, param)
    cfg = MergeExportConfig(
        method=method,
        weights=options.weights,
        base=base,
        params=options.params,
        size=parse_size(size),
        eval_data=eval_data,
        domains=parse_domains(domains),
        dataset=dataset,
        eval_limit=eval_limit,
        int8=int8,
        calib_dir=calib,
        engine=engine,
        parity_images=parity_images,
        slim=slim,
    )
    with _status(progress) as log:
        report = merge_and_export(inputs, out, cfg, log=log)
    typer.echo(
        f"wrote {out / 'report.md'} and {out / 'report.json'} ({len(report['artifacts']['onnx'])} ONNX "
        f"file(s), {report['seconds']:.0f}s)"
    )
    ev = report.get("evaluation")
    if ev:
        for s in ev["scores"]:
            hm = s["harmonic_mean"]
            typer.echo(f"  {s['name']}: H-mean {'n/a' if hm is None else f'{100 * hm:.2f}'}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("build-engine")(build_engine_cmd)
    app.command("merge-export", epilog=merge_cli.methods_epilog())(merge_export)
