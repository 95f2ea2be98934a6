"""Unsupervised adaptation on the synthetic benchmark: DUDA vs. its baselines and ablations, per target domain.

Rows (all with the small student, segformer_tiny unless --small says otherwise):
    source_only        source labels only
    oracle             target labels (an upper bound, not UDA)
    self_training      DAFormer-style self-training of the small model alone (its own EMA teacher)
    fixed_teacher      distillation from a fixed, already adapted large teacher (the seed's DUDA teacher)
    duda               large EMA teacher + large aux student -> small student, all components on
    duda-gradual       ... without gradual distillation (lambda = 1 from the start)
    duda-inconsistency ... without the inconsistency-weighted fine-tuning phase
    duda-multiteacher  ... with the large EMA teacher only (no fusion with the student's own EMA)
    mixing_only        diagnostic: self-training where no target pixel passes the threshold (q >= 1), i.e.
                       ClassMix + strong augmentation with source labels only
Every run is one `edgeseg distill` process on the `synthetic` preset plus the row's `--set` overrides, so the
numbers come from exactly the shipped code path. Scores are on the `test` split (rendered from its own random
stream; no choice was made on it) unless --split val. Every finished run leaves a small committed piece,
<results>/adaptation_runs/<target>_<row>_seed<N>.json (scores, config, the pseudo-label precision curve from
train.pl_precision); pieces whose config matches are reused, so a study can be run one seed or row at a time
(even across sessions) and the tables are rebuilt from all pieces.

    python benchmarks/adaptation.py                                  # full: 3 seeds, ~90 min on 2 idle cores
    python benchmarks/adaptation.py --iters 150 --seeds 0 --targets city --jobs 2   # reduced
    python benchmarks/adaptation.py --targets city,night --tabulate-only              # tables from committed pieces

Writes <results>/adaptation.json and adaptation.md (with the exact command, settings and timings).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402

ROWS: dict[str, list[str]] = {
    "source_only": ["method=source_only"],
    "oracle": ["method=oracle"],
    "self_training": ["method=self_training"],
    "duda": [],
    "duda-gradual": ["duda.gradual.schedule=constant"],
    "duda-inconsistency": ["duda.inconsistency.enabled=false"],
    "duda-multiteacher": ["duda.multi_teacher.enabled=false"],
    "fixed_teacher": ["method=fixed_teacher", "duda.gradual.schedule=constant"],
    # diagnostic: ClassMix + strong augmentation with (almost) no pseudo-labelled target pixel (q >= 1)
    "mixing_only": ["method=self_training", "uda.pseudo_weighting=threshold", "uda.pseudo_threshold=1.0"],
}
HEADLINE = ("source_only", "oracle", "self_training", "duda")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--work", type=Path, default=ROOT / "runs" / "adaptation", help="run folders (reused if done)"
    )
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--targets", default="city,fog", help="comma-separated synthetic target domains")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the headline rows")
    p.add_argument("--ablation-seeds", default=None, help="seeds of the other rows (default: --seeds)")
    p.add_argument("--rows", default=",".join(ROWS), help="rows to run")
    p.add_argument("--iters", type=int, default=None, help="override the preset's iterations")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one torch thread each)")
    p.add_argument("--set", dest="extra", action="append", default=[], help="extra override for every run")
    p.add_argument("--split", default="test", choices=("test", "val"), help="split scored (val: for choices)")
    p.add_argument("--test-images", type=int, default=60, help="images in the test split per domain")
    p.add_argument(
        "--tabulate-only",
        action="store_true",
        help="run nothing: build the tables from the committed pieces that match (rows may then have "
        "different seed counts)",
    )
    args = p.parse_args(argv)
    args.extra = [
        f"data.val_split={args.split}",
        f"synthetic.test_images={args.test_images}",
        "train.pl_precision=true",
        *args.extra,
    ]
    return args


def config_matches(saved: dict, want: dict, defaults: dict) -> bool:
    """`saved` (a finished run's config) equals `want`, where keys added to the config since the run was made
    count as equal when `want` holds their default (a new option, not used, does not invalidate old runs)."""
    if set(saved) - set(want):
        return False
    for key, value in want.items():
        if key not in saved:
            if value != defaults.get(key):
                return False
        elif isinstance(value, dict):
            if not isinstance(saved[key], dict) or not config_matches(
                saved[key], value, defaults.get(key) or {}
            ):
                return False
        elif saved[key] != value:
            return False
    return True


def portable(config: dict) -> dict:
    """A run config without checkout-specific paths (the rendered data, whose content the `synthetic` section
    fixes; the fixed teacher's file), so pieces made in another checkout or machine still match."""
    data = {k: v for k, v in config.get("data", {}).items() if k not in ("source_root", "target_root")}
    # fixed_teacher's teacher is always the same seed's DUDA teacher under --work: its path is checkout-specific
    models = {k: v for k, v in config.get("models", {}).items() if k != "teacher_init"}
    return {**config, "data": data, "models": models}


def piece_path(args: argparse.Namespace, target: str, row: str, seed: int) -> Path:
    suffix = "" if args.split == "test" else f"_{args.split}"
    return args.results / f"adaptation_runs{suffix}" / f"{target}_{row}_seed{seed}.json"


def curve(metrics: Path) -> list[dict]:
    """Per logged step: pseudo-label coverage and precision of the student's fused teacher and of aux0's."""
    keys = ("student.pl_quality", "student.pl_precision", "aux0.pl_quality", "aux0.pl_precision")
    rows = []
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            rec = json.loads(line)
            if "event" not in rec and any(k in rec for k in keys):
                rows.append({"step": rec["step"], **{k: rec[k] for k in keys if k in rec}})
    return rows


# The shipped encoders every piece committed before pieces recorded `init_sha256` was made with (the
# manifest's sha256 at dc28d63, unchanged since). A piece names its inits `builtin:<name>`; the name alone
# would not notice a re-shipped encoder, the hash does.
LEGACY_INIT_SHA256 = {
    "builtin:mit_b0_d1_synth": "a97bab69c78c365d0301887da9b4761ae13c0f59dfff0c125ffdf05f843cf56a",
    "builtin:mit_b1_synth": "50a7bcb91b87d42cd0a6c31480af30f48bcfddebfb8d8bfff8cce4d8bb61e8b4",
}


def builtin_init_sha256(config: dict) -> dict[str, str]:
    """sha256 (from the shipped manifest) of every `builtin:` init a run config names."""
    from edgeseg.weights import read_manifest

    entries = read_manifest()["weights"]
    models = config.get("models", {})
    refs = [models.get("large_init", ""), models.get("small_init", ""), *models.get("teacher_init", [])]
    out = {}
    for ref in refs:
        if isinstance(ref, str) and ref.startswith("builtin:"):
            entry = entries.get(ref[len("builtin:") :], {})
            out[ref] = entry.get("sha256", "missing")
    return out


def same_inits(piece: dict, want: dict) -> bool:
    """The piece was made from the builtin encoders the current manifest ships (legacy pieces: see above).
    A finished run folder's report records no hashes: it is checked against the manifest of the moment, so
    delete `--work` when the shipped encoders change."""
    recorded = piece.get("init_sha256", LEGACY_INIT_SHA256)
    return all(recorded.get(ref) == sha for ref, sha in builtin_init_sha256(want).items())


def slim(report: dict, out: Path) -> dict:
    keep = ("config", "student", "teacher", "source_only", "wall_time_s")
    return {
        **{k: report[k] for k in keep if k in report},
        "init_sha256": builtin_init_sha256(report.get("config", {})),
        "curve": curve(out / "metrics.jsonl"),
    }


def run_one(args: argparse.Namespace, data: Path, target: str, row: str, seed: int) -> dict | None:
    """The piece of (target, row, seed): reused when committed with this configuration, else run (None with
    --tabulate-only)."""
    from edgeseg.uda.config import DistillConfig, config_to_dict, load_config

    out = args.work / target / row / f"seed{seed}"
    report = out / "report.json"
    overrides = [
        f"data.target_domain={target}",
        f"seed={seed}",
        "train.source_only_baseline=false",
        "train.progress=false",
        f"data.source_root={data}",
        f"data.target_root={data}",
        *ROWS[row],
        *args.extra,
    ]
    if args.iters:
        overrides.append(f"iters={args.iters}")
    if row == "duda":
        overrides.append("train.save_teacher=true")
    if row == "fixed_teacher":
        teacher = args.work / target / "duda" / f"seed{seed}" / "teacher.safetensors"
        overrides.append(f'models.teacher_init=["{teacher}"]')
    want = config_to_dict(load_config("synthetic", overrides=overrides))
    defaults = config_to_dict(DistillConfig())
    piece = piece_path(args, target, row, seed)
    if piece.is_file():  # a committed piece of exactly this configuration: reuse it
        done = json.loads(piece.read_text())
        if config_matches(portable(done.get("config", {})), portable(want), defaults) and same_inits(
            done, want
        ):
            return done
        if args.tabulate_only:
            return None
        print(f"  {piece.name}: configuration changed, re-running", flush=True)
    if args.tabulate_only:
        return None
    if report.is_file():  # reuse a finished run, but only one made with exactly this configuration
        done = json.loads(report.read_text())
        if not (config_matches(done.get("config", {}), want, defaults) and same_inits(slim(done, out), want)):
            raise SystemExit(
                f"{out} holds a run with a different configuration; delete it or use another --work"
            )
        write_json_atomic(piece, slim(done, out))
        return json.loads(piece.read_text())
    cmd = [sys.executable, "-m", "edgeseg", "distill", "--out", str(out), "--json"]
    for o in overrides:
        cmd += ["--set", o]
    if (out / "checkpoint.safetensors").is_file():
        cmd.append("--resume")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{target}/{row}/seed{seed} failed:\n{proc.stderr[-2000:]}")
    done = slim(json.loads(report.read_text()), out)
    piece.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(piece, done)
    print(
        f"  done {target:6s} {row:20s} seed {seed}: mIoU {100 * done['student']['target_miou']:.2f} "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )
    return done


def ensure_data(args: argparse.Namespace, targets: list[str]) -> Path:
    from edgeseg.uda.config import load_config
    from edgeseg.uda.data_setup import ensure_synthetic

    cfg = load_config("synthetic", overrides=list(args.extra))
    data = args.work / "synthetic"
    ensure_synthetic(cfg, data, [cfg.data.source_domain, *targets], print)
    return data


def summarise(values: list[float]) -> dict:
    pct = [100 * v for v in values]
    return {
        "mean": round(statistics.mean(pct), 2),
        "std": round(statistics.stdev(pct), 2) if len(pct) > 1 else None,
        "n": len(pct),
        "values": [round(v, 2) for v in pct],
    }


def collect(args: argparse.Namespace) -> dict[tuple[str, str, int], dict]:
    """Run (or reuse the committed pieces of) every (target, row, seed) that `args` asks for."""
    targets = [t for t in args.targets.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",")]
    ab_seeds = [int(s) for s in (args.ablation_seeds or args.seeds).split(",")]
    rows = [r for r in args.rows.split(",") if r]
    data = args.work / "synthetic" if args.tabulate_only else ensure_data(args, targets)
    # fixed_teacher needs the DUDA teacher of the same seed: schedule it after every other run
    jobs = [
        (t, r, s)
        for t in targets
        for r in rows
        if r != "fixed_teacher"
        for s in (seeds if r in HEADLINE else ab_seeds)
    ]
    late = [(t, "fixed_teacher", s) for t in targets if "fixed_teacher" in rows for s in ab_seeds]
    results: dict[tuple[str, str, int], dict] = {}
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for batch in (jobs, late):
            for key, rep in zip(batch, pool.map(lambda j: run_one(args, data, *j), batch), strict=True):
                if rep is not None:
                    results[key] = rep
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    ab_seeds = [int(s) for s in (args.ablation_seeds or args.seeds).split(",")]
    t0 = time.time()
    results = collect(args)
    table: dict[str, dict[str, dict]] = {}
    for (target, row, _), rep in sorted(results.items()):
        table.setdefault(target, {}).setdefault(row, {"student": [], "teacher": [], "wall": []})
        entry = table[target][row]
        entry["student"].append(rep["student"]["target_miou"])
        if rep.get("teacher"):
            entry["teacher"].append(rep["teacher"]["target_miou"])
        entry["wall"].append(rep["wall_time_s"])
    summary = {
        t: {
            r: {
                "student_miou": summarise(e["student"]),
                "teacher_miou": summarise(e["teacher"]) if e["teacher"] else None,
                "mean_wall_time_s": round(statistics.mean(e["wall"]), 1),
            }
            for r, e in rows_.items()
        }
        for t, rows_ in table.items()
    }
    from edgeseg.uda.config import load_config

    base = load_config(
        "synthetic", overrides=list(args.extra) + ([f"iters={args.iters}"] if args.iters else [])
    )
    command = "python benchmarks/adaptation.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out = {
        "command": command.strip(),
        "wall_time_s": round(time.time() - t0, 1),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "iters": base.iters,
        "models": [base.models.large, base.models.small],
        "image_size": list(base.synthetic.size),
        "train_images": base.synthetic.train_images,
        "val_images": base.synthetic.val_images,
        "test_images": base.synthetic.test_images,
        "split": args.split,
        "seeds": seeds,
        "ablation_seeds": ab_seeds,
        "results": summary,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    name = "adaptation" if args.split == "test" else f"adaptation_{args.split}"
    write_json_atomic(args.results / f"{name}.json", out)
    write_text_atomic(args.results / f"{name}.md", render_markdown(out))
    print(render_markdown(out))


def render_markdown(out: dict) -> str:
    lines = [
        "# Synthetic adaptation benchmark (DUDA and baselines)",
        "",
        f"Command: `{out['command']}`  ",
        f"Total wall time: {out['wall_time_s']:.0f} s on {out['machine']}  ",
        f"Setting: `synthetic` preset, {out['iters']} iterations, large `{out['models'][0]}` -> small "
        f"`{out['models'][1]}`, {out['image_size'][0]}x{out['image_size'][1]} images, "
        f"{out['train_images']} train / {out['val_images']} val / {out['test_images']} test images per domain; "
        f"headline seeds {out['seeds']}, other rows seeds {out['ablation_seeds']}.",
        "",
        f"Target-{out['split']} mIoU (%) of the small student, mean ± std over seeds (large EMA teacher in brackets).",
        "",
    ]
    for target, rows in out["results"].items():
        lines += [
            f"## source -> {target}",
            "",
            "| row | student mIoU | teacher mIoU | per-seed | wall s/run |",
            "|---|---|---|---|---|",
        ]
        for row in ROWS:
            if row not in rows:
                continue
            r = rows[row]
            s = r["student_miou"]
            std = f" ± {s['std']:.2f}" if s["std"] is not None else ""
            t = r["teacher_miou"]
            teacher = f"({t['mean']:.2f})" if t else ""
            lines.append(
                f"| {row} | {s['mean']:.2f}{std} | {teacher} | {', '.join(f'{v:.2f}' for v in s['values'])} "
                f"| {r['mean_wall_time_s']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
