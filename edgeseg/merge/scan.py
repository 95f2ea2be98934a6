"""Linear-mode-connectivity scan between two checkpoints (Li et al., ECCV 2024, Eq. 2 and Fig. 4).

For lambda in {0, 0.1, ..., 1} the model phi(lambda) = lambda * A + (1 - lambda) * B is built with the same
code as `edgeseg merge` (weights (lambda, 1 - lambda); BatchNorm statistics pooled unless method="linear")
and evaluated on every domain. lambda = 1 is exactly A and lambda = 0 exactly B. Writes `scan.csv`,
`scan.json` and `scan.png` (per-domain mIoU and harmonic mean along the path; needs matplotlib: install
the `plot` extra, `pip install edgeseg[plot]`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError

LAMBDAS = tuple(i / 10 for i in range(11))


@dataclass
class ScanResult:
    a: str
    b: str
    method: str
    lambdas: list[float]
    miou: dict[str, list[float]]  # domain -> mIoU per lambda
    harmonic_mean: list[float]
    csv: str
    json: str
    png: str | None

    def best(self) -> tuple[float, float]:
        """(lambda, harmonic mean) of the best point on the path."""
        i = max(
            range(len(self.lambdas)),
            key=lambda j: -1 if math.isnan(self.harmonic_mean[j]) else self.harmonic_mean[j],
        )
        return self.lambdas[i], self.harmonic_mean[i]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the scan plot needs matplotlib: pip install 'edgeseg[plot]' (or pass --no-plot)"
        ) from None


def scan_pair(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    datasets: dict[str, Any],
    out_dir: str | os.PathLike[str],
    lambdas: Sequence[float] = LAMBDAS,
    method: str = "bn",
    plot: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    from edgeseg.io_utils import staged_dir
    from edgeseg.merge.methods import REGISTRY, get_method

    if not get_method(method).interpolates:
        paths = ", ".join(name for name, m in REGISTRY.items() if m.interpolates)
        raise ConfigError(
            f"the scan walks a straight line, which '{method}' does not merge along; use one of: {paths}"
        )
    if any(not (0.0 <= lam <= 1.0) for lam in lambdas):
        raise ConfigError(f"lambdas must lie in [0, 1], got {list(lambdas)}")
    if plot:
        require_matplotlib()
    final_dir = Path(out_dir)
    with staged_dir(final_dir) as stage:  # a failed scan leaves no folder and no partial results behind
        return _scan_into(stage, final_dir, a, b, datasets, lambdas, method, plot, progress)


def _scan_into(
    out_dir: Path,
    final_dir: Path,
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    datasets: dict[str, Any],
    lambdas: Sequence[float],
    method: str,
    plot: bool,
    progress: Callable[[int, int], None] | None,
) -> ScanResult:
    from edgeseg.io_utils import write_json_atomic, write_text_atomic
    from edgeseg.merge.api import MergeOptions, merge_checkpoints
    from edgeseg.merge.evaluation import evaluate_model
    from edgeseg.merge.multihead import load_any_model

    domains = list(datasets)
    miou: dict[str, list[float]] = {d: [] for d in domains}
    hmean: list[float] = []
    tmp = out_dir / ".points"  # one merged model per point, deleted once evaluated
    tmp.mkdir()
    for i, lam in enumerate(lambdas):
        path = tmp / f"lambda_{lam:.3f}.safetensors"
        merge_checkpoints([a, b], path, MergeOptions(method=method, weights=(lam, 1.0 - lam)))
        scores = evaluate_model(load_any_model(path), datasets, name=f"lambda={lam:g}")
        path.unlink()
        for d in domains:
            miou[d].append(scores.miou[d])
        hmean.append(scores.harmonic_mean)
        if progress:
            progress(i + 1, len(lambdas))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["lambda"] + [f"miou_{d}" for d in domains] + ["harmonic_mean"])
    for i, lam in enumerate(lambdas):
        writer.writerow([f"{lam:g}"] + [f"{miou[d][i]:.6f}" for d in domains] + [f"{hmean[i]:.6f}"])
    tmp.rmdir()
    write_text_atomic(out_dir / "scan.csv", buf.getvalue())
    result = ScanResult(
        str(a),
        str(b),
        method,
        list(lambdas),
        miou,
        hmean,
        str(final_dir / "scan.csv"),
        str(final_dir / "scan.json"),
        str(final_dir / "scan.png") if plot else None,
    )
    write_json_atomic(out_dir / "scan.json", _json_safe(result.to_json()))
    if plot:
        plot_scan(result, out_dir / "scan.png")
    return result


def plot_scan(result: ScanResult, path: str | os.PathLike[str]) -> None:
    """Per-domain mIoU and harmonic mean (%) against lambda; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgeseg.io_utils import atomic_path

    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for domain, values in result.miou.items():
        ax.plot(result.lambdas, [100 * v for v in values], marker="o", label=f"{domain} mIoU")
    ax.plot(
        result.lambdas,
        [100 * v for v in result.harmonic_mean],
        marker="s",
        color="black",
        linewidth=2.2,
        label="harmonic mean",
    )
    a_name, b_name = _labels(Path(result.a), Path(result.b))
    ax.set_xlabel(f"lambda   (0 = {b_name},  1 = {a_name})")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(f"Linear path A-B ({result.method} merge)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _labels(a: Path, b: Path) -> tuple[str, str]:
    """Short names for the plot: file stems, with the folder when the stems are equal (run/student)."""
    if a.stem != b.stem:
        return a.stem, b.stem
    return f"{a.parent.name}/{a.stem}", f"{b.parent.name}/{b.stem}"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj
