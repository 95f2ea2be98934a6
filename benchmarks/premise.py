"""Does DUDA's premise hold on the synthetic benchmark? Checked before any DUDA result is believed.

DUDA (and any teacher -> student distillation for UDA) only helps if
  (a) the large model, adapted by self-training, is clearly better on the target than the small model
      adapted the same way:   large adapted teacher mIoU - small self-trained mIoU >= 5 (mean of seeds), and
  (b) the pseudo-labels the student learns from are right where they are confident: the precision of the
      pixels with q >= tau (uda.pseudo_threshold), measured against the target labels that training never
      sees (train.pl_precision), >= 0.9 over the iterations.

Both come from the `duda` and `self_training` rows of benchmarks/adaptation.py (same runs, same committed
pieces, reused when present): the DUDA run's large EMA teacher is the "large adapted teacher" (DAFormer
self-training of the large model, run inside DUDA), its fused teacher is what the student is taught with.

    python benchmarks/premise.py                                # 3 seeds, city and night, test split
    python benchmarks/premise.py --seeds 0 --targets city --jobs 2

Writes <results>/premise.json, premise.md and premise.png (precision curves).
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import adaptation  # noqa: E402

from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402

ROWS = ("self_training", "duda")
MIN_GAP, MIN_PRECISION = 5.0, 0.9
MIN_COVERAGE = 0.01  # windows where < 1% of target pixels are confident carry no precision estimate


def windowed(
    curves: list[list[dict]], key: str, window: int, weight_key: str | None = None, min_weight: float = 0.0
) -> list[tuple[int, float]]:
    """Mean of `key` over seeds and over steps in windows of `window` iterations: [(window end, value)].

    With `weight_key` (the coverage of a precision), each logged value counts by its weight: the precision
    of a window is that of all its confident pixels, and windows whose mean weight is below `min_weight`
    (a handful of confident pixels) are left out."""
    buckets: dict[int, list[tuple[float, float]]] = {}
    for c in curves:
        for rec in c:
            v = rec.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            w = float(rec.get(weight_key, 0.0)) if weight_key else 1.0
            end = window * math.ceil(rec["step"] / window)
            buckets.setdefault(end, []).append((float(v), w))
    out = []
    for end, vals in sorted(buckets.items()):
        total = sum(w for _, w in vals)
        if total <= 0 or total / len(vals) < min_weight:
            continue
        out.append((end, sum(v * w for v, w in vals) / total))
    return out


def analyse(target: str, pieces: dict[tuple[str, int], dict], seeds: list[int], window: int) -> dict:
    teacher = [100 * pieces[("duda", s)]["teacher"]["target_miou"] for s in seeds]
    small = [100 * pieces[("self_training", s)]["student"]["target_miou"] for s in seeds]
    gaps = [t - s for t, s in zip(teacher, small, strict=True)]
    duda_curves = [pieces[("duda", s)]["curve"] for s in seeds]
    st_curves = [pieces[("self_training", s)]["curve"] for s in seeds]
    curves = {
        "large_teacher": windowed(duda_curves, "aux0.pl_precision", window, "aux0.pl_quality", MIN_COVERAGE),
        "duda_fused": windowed(
            duda_curves, "student.pl_precision", window, "student.pl_quality", MIN_COVERAGE
        ),
        "small_self_training": windowed(
            st_curves, "student.pl_precision", window, "student.pl_quality", MIN_COVERAGE
        ),
    }
    coverage = {
        "large_teacher": windowed(duda_curves, "aux0.pl_quality", window),
        "duda_fused": windowed(duda_curves, "student.pl_quality", window),
        "small_self_training": windowed(st_curves, "student.pl_quality", window),
    }
    lo = {k: min(v for _, v in c) if c else None for k, c in curves.items()}

    def stat(vals: list[float]) -> dict:
        return {
            "mean": round(statistics.mean(vals), 2),
            "std": round(statistics.stdev(vals), 2) if len(vals) > 1 else None,
            "values": [round(v, 2) for v in vals],
        }

    gap = statistics.mean(gaps)
    return {
        "teacher_miou": stat(teacher),
        "small_self_training_miou": stat(small),
        "gap": stat(gaps),
        "premise_a": gap >= MIN_GAP,
        "precision_curves": curves,
        "coverage_curves": coverage,
        "min_windowed_precision": lo,
        "premise_b": lo["duda_fused"] is not None and lo["duda_fused"] >= MIN_PRECISION,
    }


def plot(results: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    for ax, (target, r) in zip(axes[0], results.items(), strict=True):
        for name, c in r["precision_curves"].items():
            if c:
                ax.plot([s for s, _ in c], [v for _, v in c], marker="o", ms=3, label=name.replace("_", " "))
        ax.axhline(MIN_PRECISION, color="grey", ls="--", lw=0.8)
        ax.set(
            title=f"source -> {target}",
            xlabel="iteration",
            ylabel="precision of q >= tau pseudo-labels",
            ylim=(0.5, 1.0),
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_markdown(out: dict) -> str:
    lines = [
        "# DUDA's premise on the synthetic benchmark",
        "",
        f"Command: `{out['command']}`  ",
        f"Wall time: {out['wall_time_s']:.0f} s (runs reused from committed pieces count 0)  ",
        f"Split scored: `{out['split']}`; seeds {out['seeds']}; pseudo-label threshold tau = {out['tau']}.",
        "",
        "| target | large adapted teacher | small self-training | gap (>= 5) | (a) | min precision, fused "
        "(>= 0.9) | min precision, large teacher | min precision, small ST | (b) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(s: dict) -> str:
        return f"{s['mean']:.2f}" + (f" ± {s['std']:.2f}" if s["std"] is not None else "")

    def p(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for target, r in out["results"].items():
        lo = r["min_windowed_precision"]
        lines.append(
            f"| {target} | {fmt(r['teacher_miou'])} | {fmt(r['small_self_training_miou'])} | "
            f"{fmt(r['gap'])} | {'holds' if r['premise_a'] else 'FAILS'} | {p(lo['duda_fused'])} | "
            f"{p(lo['large_teacher'])} | {p(lo['small_self_training'])} | "
            f"{'holds' if r['premise_b'] else 'FAILS'} |"
        )
    lines += [
        "",
        f"Precision is that of all confident pixels of a {out['window']}-iteration window, pooled over seeds "
        "(each logged batch weighted by its coverage); 'min' is the worst window; windows where under 1% of "
        "the target pixels are confident are left out. Coverage (share of target pixels with q >= tau) is in "
        "premise.json.",
        "",
    ]
    if out.get("plot"):
        lines += [f"![precision curves]({Path(out['plot']).name})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="city,night")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--window", type=int, default=50, help="iterations per precision-curve point")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=adaptation.ROOT / "runs" / "adaptation")
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--set", dest="extra", action="append", default=[])
    ns = p.parse_args(argv)
    targets = [t for t in ns.targets.split(",") if t]
    seeds = [int(s) for s in ns.seeds.split(",")]
    forwarded = ["--work", str(ns.work), "--results", str(ns.results), "--split", ns.split]
    for e in ns.extra:
        forwarded += ["--set", e]
    args = adaptation.parse_args(forwarded)
    args.iters = None
    t0 = time.time()
    data = adaptation.ensure_data(args, targets)
    jobs = [(t, r, s) for t in targets for s in seeds for r in ROWS]
    pieces: dict[str, dict] = {t: {} for t in targets}
    with ThreadPoolExecutor(max_workers=max(ns.jobs, 1)) as pool:
        for (t, r, s), rep in zip(
            jobs, pool.map(lambda j: adaptation.run_one(args, data, *j), jobs), strict=True
        ):
            pieces[t][(r, s)] = rep
    from edgeseg.uda.config import load_config

    tau = load_config("synthetic", overrides=args.extra).uda.pseudo_threshold
    results = {t: analyse(t, pieces[t], seeds, ns.window) for t in targets}
    command = "python benchmarks/premise.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out = {
        "command": command.strip(),
        "wall_time_s": round(time.time() - t0, 1),
        "split": ns.split,
        "seeds": seeds,
        "tau": tau,
        "window": ns.window,
        "results": results,
    }
    ns.results.mkdir(parents=True, exist_ok=True)
    suffix = "" if ns.split == "test" else f"_{ns.split}"
    png = plot(results, ns.results / f"premise{suffix}.png")
    out["plot"] = str(png.relative_to(adaptation.ROOT)) if png else None
    write_json_atomic(ns.results / f"premise{suffix}.json", out)
    write_text_atomic(ns.results / f"premise{suffix}.md", render_markdown(out))
    print(render_markdown(out))
    return out


if __name__ == "__main__":
    main()
