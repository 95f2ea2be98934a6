"""Commands: `edgeseg merge A B [C ...] --out M`, `edgeseg merge scan A B --data ROOT --domains ...` and
`edgeseg merge split MULTIHEAD --out DIR`.

`merge` is a command group with a default command: anything after `merge` that is not the name of a
sub-command (`scan`, `split`) goes to the merging command itself, so both spellings work without a second
top-level command. (A checkpoint file literally named `scan` or `split` must be given as `./scan`.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from edgeseg.cli.progress import progress_bar
from edgeseg.cli.validate import ranged
from edgeseg.errors import ConfigError
from edgeseg.merge.methods import REGISTRY, methods_help
from edgeseg.merge.methods.params import parse_assignments

if TYPE_CHECKING:
    from edgeseg.merge.api import MergeOptions

_DEFAULT = "models"


class _DefaultCommandGroup(TyperGroup):
    """Routes `edgeseg merge ARGS` to the hidden default command unless ARGS starts with a sub-command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands:
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        # usage and errors then read "edgeseg merge [OPTIONS] INPUTS...", not "edgeseg merge models ..."
        return ("" if name == _DEFAULT else name), command, rest


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} '{text}' is not a comma-separated list of numbers, e.g. 0.5,0.5") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ConfigError(f"{what} '{text}': give finite numbers >= 0 with a positive sum, e.g. 0.5,0.5")
    return values


METHOD_HELP = f"{' | '.join(REGISTRY)} (their parameters: see below)"
BASE_HELP = (
    "the inputs' shared initial checkpoint, for "
    f"{', '.join(name for name, m in REGISTRY.items() if m.needs_base)}"
)
PARAM_HELP = (
    "a parameter of the chosen --method as NAME=VALUE, repeatable, e.g. -p density=0.3 -p scale=1.2; "
    "each method's parameters and defaults are listed below"
)


def merge_options(
    method: str, weights: str | None, base: Path | None, params: list[str] | None
) -> MergeOptions:
    """The CLI's merge flags -> checked MergeOptions (unknown method or parameter: one-line error, before work)."""
    from edgeseg.merge.api import MergeOptions, resolve_method

    options = MergeOptions(
        method=method, weights=_floats(weights, "--weights"), base=base, params=parse_assignments(params)
    )
    resolve_method(options)
    return options


def methods_epilog() -> str:
    """The per-method parameter list shown at the end of `--help` (generated from the registry)."""
    return "Methods and their --param NAME=VALUE (defaults shown):\n\n" + methods_help()


def merge_models(
    inputs: Annotated[
        list[Path], typer.Argument(help="domain-adapted checkpoints (.safetensors), 2 or more")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="merged checkpoint to write")],
    method: Annotated[str, typer.Option(help=METHOD_HELP)] = "bn",
    weights: Annotated[
        str | None,
        typer.Option(help="one weight per input, e.g. 0.7,0.3 (normalised to sum 1; default equal)"),
    ] = None,
    base: Annotated[Path | None, typer.Option(help=BASE_HELP)] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help=PARAM_HELP)] = None,
    eval_data: Annotated[Path | None, typer.Option(help="dataset root: evaluate inputs and result")] = None,
    domains: Annotated[str | None, typer.Option(help="domains to evaluate, e.g. city,night")] = None,
    dataset: Annotated[
        str, typer.Option(help="dataset under --eval-data (synthetic, acdc, ...)")
    ] = "synthetic",
    split: Annotated[str, typer.Option(help="labelled split to evaluate")] = "val",
    limit: Annotated[int | None, ranged(help="evaluate only the first N images per domain", lo=1)] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the report (and scores) as JSON")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars on stderr")] = True,
) -> None:
    """Merge domain-adapted models into one, without data.

    Examples:
      edgeseg merge city.safetensors night.safetensors --out merged.safetensors
      edgeseg merge a.safetensors b.safetensors c.safetensors --out m.safetensors --method linear --weights 2,1,1
      edgeseg merge city.safetensors fog.safetensors --out m.safetensors --method layerwise -p anchor=city.safetensors
      edgeseg merge city.safetensors night.safetensors --out mh.safetensors --method backbone -p heads=city,night
      edgeseg merge a.safetensors b.safetensors --out m.safetensors --method ties --base init.safetensors -p density=0.3
      edgeseg merge city.safetensors night.safetensors --out m.safetensors --eval-data data/synth --domains city,night

    See also `edgeseg merge scan --help` (linear-mode-connectivity curve between two models).
    """
    from rich.console import Console

    from edgeseg.io_utils import write_json_atomic
    from edgeseg.merge.api import merge_checkpoints
    from edgeseg.merge.evaluation import domain_datasets, evaluate_checkpoints, parse_domains, scores_table
    from edgeseg.preflight import check_outputs

    check_outputs(files=[out, json_out], inputs=[*inputs, base])
    options = merge_options(method, weights, base, param)
    eval_domains = parse_domains(domains)
    if eval_data is not None and not eval_domains:
        raise ConfigError("--eval-data needs --domains, e.g. --domains city,night")
    datasets = domain_datasets(eval_data, eval_domains, dataset, split, limit) if eval_data else None

    with progress_bar("merging", progress) as update:
        report = merge_checkpoints(inputs, out, options, progress=update)
    for message in report.messages:
        typer.echo(f"note: {message}", err=True)
    shown = ", ".join(f"{Path(p).name}={w:.3g}" for p, w in zip(report.inputs, report.weights, strict=True))
    typer.echo(
        f"merged {len(report.inputs)} models ({report.method}; {shown}) -> {report.out}: "
        f"{report.num_tensors} tensors, {report.bn_layers} BatchNorm layers, {report.seconds:.1f}s"
    )
    if report.heads:
        typer.echo(f"multi-head checkpoint, heads: {', '.join(report.heads)}")
    if report.layer_anchor_weights:
        first, *_, last = report.layer_anchor_weights.items()
        typer.echo(
            f"anchor {Path(report.anchor or '').name}: weight {first[1]:.3f} at {first[0]} -> "
            f"{last[1]:.3f} at {last[0]}"
        )

    payload: dict[str, Any] = {"merge": report.to_json()}
    if datasets is not None:
        with progress_bar("evaluating", progress) as update:
            scores = evaluate_checkpoints(
                [*inputs, out], datasets, progress=lambda name, i, n: update(i, n, f"evaluating {name}")
            )
        Console().print(scores_table(scores, eval_domains, title=f"{dataset} {split}: mIoU (%) per domain"))
        payload["scores"] = [s.to_json() for s in scores]
    if json_out is not None:
        write_json_atomic(json_out, payload)


def scan(
    a: Annotated[Path, typer.Argument(help="model A (lambda = 1)")],
    b: Annotated[Path, typer.Argument(help="model B (lambda = 0)")],
    data: Annotated[Path, typer.Option(help="dataset root")],
    domains: Annotated[str, typer.Option(help="domains to evaluate, e.g. city,night")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for scan.csv, scan.json, scan.png")],
    dataset: Annotated[str, typer.Option(help="dataset under --data")] = "synthetic",
    split: Annotated[str, typer.Option(help="labelled split to evaluate")] = "val",
    limit: Annotated[int | None, ranged(help="evaluate only the first N images per domain", lo=1)] = None,
    method: Annotated[
        str, typer.Option(help="a merge method that interpolates: bn (pool BatchNorm statistics) | linear")
    ] = "bn",
    steps: Annotated[int, ranged(help="points on the path, lambda = 0 .. 1", lo=2, hi=101)] = 11,
    plot: Annotated[bool, typer.Option(help="write scan.png (needs the `plot` extra: matplotlib)")] = True,
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Evaluate lambda * A + (1 - lambda) * B for lambda in 0, 0.1, ..., 1 on every domain.

    Writes a CSV, JSON and a PNG plot of per-domain mIoU and their harmonic mean along the path.

    Example:
      edgeseg merge scan city.safetensors night.safetensors --data data/synth --domains city,night --out scan/
    """
    from rich.console import Console
    from rich.table import Table

    from edgeseg.merge.evaluation import domain_datasets, parse_domains
    from edgeseg.merge.scan import require_matplotlib, scan_pair
    from edgeseg.preflight import check_output_dir

    check_output_dir(out, inputs=[a, b, data])
    if steps < 2:
        raise ConfigError(f"--steps must be >= 2, got {steps}")
    if plot:
        require_matplotlib()
    eval_domains = parse_domains(domains)
    datasets = domain_datasets(data, eval_domains, dataset, split, limit)
    lambdas = [i / (steps - 1) for i in range(steps)]
    with progress_bar("scanning", progress) as update:
        result = scan_pair(a, b, datasets, out, lambdas, method=method, plot=plot, progress=update)
    table = Table(title=f"{a.name} (lambda=1) <-> {b.name} (lambda=0): mIoU (%)")
    table.add_column("lambda", justify="right")
    for d in eval_domains:
        table.add_column(d, justify="right")
    table.add_column("H-mean", justify="right", style="bold")
    for i, lam in enumerate(result.lambdas):
        table.add_row(
            f"{lam:.2f}",
            *(f"{100 * result.miou[d][i]:.2f}" for d in eval_domains),
            f"{100 * result.harmonic_mean[i]:.2f}",
        )
    Console().print(table)
    best_lam, best_h = result.best()
    typer.echo(
        f"best harmonic mean {100 * best_h:.2f} at lambda={best_lam:.2f}; wrote {result.csv}"
        + (f", {result.png}" if result.png else "")
    )


def split(
    model: Annotated[
        Path, typer.Argument(help="multi-head checkpoint written by `edgeseg merge --method backbone`")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for <stem>_<domain>.safetensors")],
) -> None:
    """Split a multi-head (shared encoder, one head per domain) checkpoint into one ordinary checkpoint
    per domain, for tools that take a single-head model (`edgeseg eval`, `edgeseg export`).

    Example:
      edgeseg merge split merged.safetensors --out per_domain/
    """
    from edgeseg.merge.multihead import split_multihead
    from edgeseg.preflight import check_output_dir

    check_output_dir(out, inputs=[model])
    for path in split_multihead(model, out):
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    merge_app = typer.Typer(
        cls=_DefaultCommandGroup,
        no_args_is_help=True,
        add_completion=False,
        help="Merge domain-adapted models (training-free); `merge scan` for the "
        "linear-mode-connectivity curve. Run `edgeseg merge --help` for options.",
    )
    merge_app.command(_DEFAULT, hidden=True, epilog=methods_epilog())(merge_models)
    merge_app.command("scan")(scan)
    merge_app.command("split")(split)
    app.add_typer(merge_app, name="merge")
