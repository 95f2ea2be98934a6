"""Commands: `edgeseg data synth|list|stats` and `edgeseg eval`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli.progress import progress_bar
from edgeseg.cli.validate import ranged, seed_option
from edgeseg.deploy.runtime.backends import backend_help, model_suffixes
from edgeseg.errors import ConfigError

data_app = typer.Typer(
    help="Datasets: render the synthetic benchmark, list readers, class statistics.", no_args_is_help=True
)


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="output folder (one Cityscapes-layout tree per domain)")],
    domains: Annotated[str, typer.Option(help="comma-separated domains")] = "source,city,night,fog,rain",
    num: Annotated[int, ranged(help="training images per domain", lo=1, hi=100000)] = 200,
    val_num: Annotated[
        int | None, ranged(help="validation images per domain (default num/4)", lo=0, hi=100000)
    ] = None,
    size: Annotated[str, typer.Option(help="image HxW (multiples of 8, 64..4096 per side)")] = "256x512",
    seed: Annotated[int, seed_option("random seed (same seed, same pixels)")] = 0,
) -> None:
    """Render the procedural multi-domain street-scene benchmark with pixel-exact labels.

    Examples:
      edgeseg data synth --out data/synth
      edgeseg data synth --out data/synth --domains source,fog --num 50 --size 128x256 --seed 1
      edgeseg eval model.safetensors --data data/synth --dataset synthetic --domain fog
    """
    from edgeseg.data.synthetic import parse_size, render_dataset
    from edgeseg.preflight import check_output_dir

    check_output_dir(out)
    names = [d.strip() for d in domains.split(",") if d.strip()]
    if not names:
        raise ConfigError("--domains is empty; give e.g. source,city,night,fog,rain")
    if num < 1 or (val_num is not None and val_num < 0):
        raise ConfigError("--num must be >= 1 and --val-num >= 0")
    splits = {"train": num, "val": val_num if val_num is not None else max(num // 4, 1)}
    with progress_bar("rendering") as update:
        manifest = render_dataset(out, names, num, parse_size(size), seed, splits=splits, progress=update)
    typer.echo(f"wrote {len(names)} domain(s) x {splits} to {out} (manifest: {out / 'synthetic.json'})")
    typer.echo(f"load with: --data {out} --dataset synthetic --domain {manifest['domains'][0]}")


@data_app.command("list")
def list_cmd() -> None:
    """List the dataset readers, their splits, domains and expected layout."""
    from edgeseg.data.datasets import DATASETS

    for name, spec in sorted(DATASETS.items()):
        domains = f"  domains: {','.join(spec.domains)}" if spec.domains else ""
        typer.echo(f"{name:12s} splits: {','.join(spec.splits)}{domains}\n             {spec.layout}")


@data_app.command("stats")
def stats(
    data: Annotated[Path, typer.Option("--data", help="dataset root")],
    dataset: Annotated[str, typer.Option(help="dataset name (see `edgeseg data list`)")],
    split: Annotated[str, typer.Option(help="split")] = "train",
    domain: Annotated[str | None, typer.Option(help="domain/condition, where the dataset has them")] = None,
    out: Annotated[
        Path | None, typer.Option(help="JSON cache (default DATA/<dataset>_<split>_class_stats.json)")
    ] = None,
    temperature: Annotated[float, ranged(help="rare-class sampling temperature", lo=1e-4, hi=100)] = 0.01,
) -> None:
    """Per-class pixel statistics (cached to JSON) and the rare-class sampling probabilities.

    Example:
      edgeseg data stats --data data/synth --dataset synthetic --domain source
    """
    from edgeseg.data.datasets import load_dataset
    from edgeseg.data.labels import CLASSES
    from edgeseg.data.sampling import class_frequencies, load_or_compute_stats, rcs_probabilities
    from edgeseg.preflight import check_output_file

    check_output_file(out, inputs=[data])
    ds = load_dataset(dataset, data, split, domain, with_labels=True)
    cache = out or data / f"{ds.name.replace('/', '_')}_{split}_class_stats.json"
    if out is None and not cache.is_file():
        check_output_file(cache)
    with progress_bar("counting") as update:
        st = load_or_compute_stats(ds, cache, update)
    freq = class_frequencies(st.totals)
    probs = rcs_probabilities(freq, temperature)
    typer.echo(f"{'class':14s} {'pixels %':>9s} {'p(sample)':>10s}")
    for i, name in enumerate(CLASSES):
        typer.echo(f"{name:14s} {100 * freq[i]:9.3f} {probs[i]:10.4f}")
    typer.echo(f"cached: {cache}")


def _result_table(title: str, results: dict[str, Any]) -> Any:
    from rich.table import Table

    from edgeseg.data.labels import CLASSES

    table = Table(title=title)
    table.add_column("class")
    for name in results:
        table.add_column(name, justify="right")

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.2f}"

    for cls in CLASSES:
        table.add_row(cls, *(fmt(r["iou"][cls]) for r in results.values()))
    table.add_section()
    table.add_row("mIoU", *(fmt(r["miou"]) for r in results.values()))
    table.add_row("pixel acc.", *(fmt(r["pixel_accuracy"]) for r in results.values()))
    return table


def evaluate_cmd(
    model: Annotated[
        Path | None,
        typer.Argument(
            help=f"edgeseg .safetensors checkpoint, or an exported model ({', '.join(model_suffixes())})"
        ),
    ] = None,
    data: Annotated[Path, typer.Option("--data", help="dataset root")] = Path("data/synth"),
    dataset: Annotated[str, typer.Option(help="dataset name (see `edgeseg data list`)")] = "synthetic",
    split: Annotated[str, typer.Option(help="split to evaluate")] = "val",
    domain: Annotated[
        str | None, typer.Option(help="domain(s), comma-separated; several -> harmonic mean")
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="evaluate saved trainId PNGs instead of a model")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write results as JSON")] = None,
    mode: Annotated[str, typer.Option(help="inference: whole | slide")] = "whole",
    crop: Annotated[str, typer.Option(help="sliding-window crop HxW")] = "512x1024",
    stride: Annotated[str | None, typer.Option(help="sliding-window stride HxW (default 2/3 crop)")] = None,
    save_pred: Annotated[Path | None, typer.Option(help="save trainId and colour predictions here")] = None,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:N")] = "cpu",
    backend: Annotated[str, typer.Option(help=backend_help())] = "auto",
) -> None:
    """Evaluate a model (or saved predictions) with Cityscapes-exact IoU / mIoU.

    Examples:
      edgeseg eval model.safetensors --data data/synth --dataset synthetic --domain city,night,fog,rain
      edgeseg eval model.safetensors --data /data/cityscapes --dataset cityscapes --mode slide --json r.json
      edgeseg eval student.onnx --data data/synth --dataset synthetic --domain fog
      edgeseg eval student.engine --data data/synth --dataset synthetic --domain fog --backend tensorrt
      edgeseg eval --predictions results/ --data /data/cityscapes --dataset cityscapes
    """
    from rich.console import Console

    from edgeseg.data.datasets import load_dataset
    from edgeseg.evaluate import evaluate_dataset, evaluate_prediction_dir, harmonic_mean, open_predictor
    from edgeseg.io_utils import staged_dir, write_json_atomic
    from edgeseg.preflight import check_outputs
    from edgeseg.sizes import parse_size

    if (model is None) == (predictions is None):
        raise ConfigError("give either a MODEL checkpoint or --predictions DIR (not both)")
    if mode not in ("whole", "slide"):
        raise ConfigError(f"--mode must be whole or slide, not {mode!r}")
    crop_hw, stride_hw = parse_size(crop), (parse_size(stride) if stride else None)
    check_outputs(files=[json_out], dirs=[save_pred], inputs=[model, predictions, data])
    domains: list[str | None] = [d.strip() for d in domain.split(",")] if domain else [None]
    datasets = [load_dataset(dataset, data, split, d, with_labels=True) for d in domains]
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:  # predictions are staged: a failed run leaves no half-filled folder
        predictor = None
        if model is not None:  # the backend table picks the runtime; the model is closed at exit
            predictor = stack.enter_context(open_predictor(model, backend, mode, crop_hw, stride_hw, device))
        pred_dir = stack.enter_context(staged_dir(save_pred)) if save_pred is not None else None
        for ds in datasets:
            with progress_bar(f"eval {ds.name}") as update:
                if predictor is None:
                    assert predictions is not None
                    res = evaluate_prediction_dir(predictions, ds, update)
                else:
                    res = evaluate_dataset(
                        predictor, ds, pred_dir / ds.name.replace("/", "_") if pred_dir else None, update
                    )
            results[ds.name] = res.to_json()
    console = Console()
    console.print(_result_table(f"{split} IoU (%)", results))
    summary: dict[str, Any] = (
        dict(next(iter(results.values()))) if len(results) == 1 else {"domains": results}
    )
    if len(results) > 1:
        mious = [r["miou"] if r["miou"] is not None else float("nan") for r in results.values()]
        summary["harmonic_mean"] = harmonic_mean(mious)
        summary["mean_miou"] = sum(mious) / len(mious)
        console.print(f"harmonic mean of mIoU: {100 * summary['harmonic_mean']:.2f}")
    summary["model"] = str(model) if model else None
    summary["predictions"] = str(predictions) if predictions else None
    if json_out is not None:
        write_json_atomic(json_out, summary)
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("eval")(evaluate_cmd)
