"""Merging benchmark on the synthetic multi-domain data: one small student per target domain, all adapted
from one shared initialisation, merged without data, evaluated on every target domain.

Pipeline (everything except step 1-2 can be fed with existing checkpoints):
  1. shared init: a small model trained on labelled `source` images only (`edgeseg distill`, method
     source_only). It plays the role ImageNet pre-training plays in Li et al. (ECCV 2024): a common start
     that keeps the adapted models in one loss basin.
  2. one student per target domain (city, night, fog): `edgeseg distill` (DUDA) from that init.
  3. for the two-domain (city, night) and three-domain (city, night, fog) settings: every single model and
     every registered merge method with its defaults (linear, linear + BN statistics, layer-wise with each
     student as anchor, backbone-only + separate heads, task arithmetic, TIES and DARE relative to the
     shared init) -> per-domain mIoU and harmonic mean.
  4. the linear-mode-connectivity scan between the city and night students (CSV + PNG).

    python benchmarks/merging.py --work /tmp/merging                  # trains init + students (distill API)
    python benchmarks/merging.py --work /tmp/merging --init INIT.safetensors \\
        --student city=city.safetensors --student night=night.safetensors --student fog=fog.safetensors

Results: benchmarks/results/merging.{json,md}, merging_scan_city_night.{csv,json,png}, and the run's piece
benchmarks/results/merging_runs/seed<N>.json. Several seeds (students of benchmarks/adaptation.py's seeds):

    python benchmarks/merging.py --work runs/merging_s1 --init preset --seed 1 --student city=... ...
    python benchmarks/merging.py --tabulate-seeds 0,1,2      # merging_seeds.{json,md} from committed pieces
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOMAINS = ("city", "night", "fog")
SETTINGS = (("city", "night"), ("city", "night", "fog"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def distill_config(args: argparse.Namespace, data_root: Path, method: str, target: str, init: str = ""):
    from edgeseg.uda.config import load_config, replace_config

    cfg = load_config(preset=args.preset)
    overrides = [
        f"method={method}",
        f"seed={args.seed}",
        f"data.source_root={data_root}",
        f"data.target_root={data_root}",
        f"data.target_domain={target}",
        "train.source_only_baseline=false",
        "train.progress=false",
        f"train.threads={args.threads}",
    ]
    if args.iters:
        overrides.append(f"iters={args.iters}")
    if init:
        overrides.append(f"models.small_init={init}")
    return replace_config(cfg, overrides + list(args.set))


def preset_init(args: argparse.Namespace) -> Path:
    """The exact initial small model of a `--preset` run with `--seed` (e.g. the students of
    benchmarks/adaptation.py): the shipped pretrained encoder and the seeded random head, saved."""
    from edgeseg.checkpoint import save_model
    from edgeseg.uda.config import load_config
    from edgeseg.uda.nets import init_model

    cfg = load_config(preset=args.preset, overrides=[f"seed={args.seed}", *args.set])
    model = init_model(cfg.models.small, cfg.models.num_classes, cfg.models.small_init, cfg.seed * 1000 + 1)
    path = args.work / f"init_{cfg.models.small}_seed{cfg.seed}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(
        model, path, provenance={"init": cfg.models.small_init, "seed": cfg.seed, "role": "shared init"}
    )
    return path


def prepare_models(args: argparse.Namespace, data_root: Path) -> tuple[Path, dict[str, Path], dict[str, Any]]:
    """(init, {domain: student}) - given on the command line, or trained with the distill API."""
    given = dict(s.split("=", 1) for s in args.student)
    if given:
        missing = [d for d in DOMAINS if d not in given]
        if missing or not args.init:
            raise SystemExit(
                f"give --init and a --student for every domain ({', '.join(DOMAINS)}); missing: "
                f"{missing or ['--init']}"
            )
        init = Path(args.init)
        if (
            args.init == "preset"
        ):  # the students' common start: the preset's shipped encoder + the seed's head init
            init = preset_init(args)
        return init, {d: Path(given[d]) for d in DOMAINS}, {"students": "given", "init": str(init), **given}

    try:
        from edgeseg.uda.api import run_distill
        from edgeseg.uda.data_setup import ensure_synthetic
    except ImportError as exc:  # the distill API (issue 4) is not in this tree yet
        raise SystemExit(
            f"the distill API is not available ({exc}); pass --init and --student DOMAIN=PATH"
        ) from None

    runs = args.work / "runs"
    info: dict[str, Any] = {"students": "trained with edgeseg.uda.api.run_distill"}
    cfg = distill_config(args, data_root, "source_only", DOMAINS[0])
    ensure_synthetic(cfg, data_root, ["source", *DOMAINS], log)
    init = runs / "init_source_only" / "student.safetensors"
    if not init.is_file():
        log("training the shared init (source only)")
        result = run_distill(cfg, init.parent, log=log)
        info["init_report"] = {k: result.report.get(k) for k in ("method", "iters", "wall_time_s", "student")}
    students = {}
    for domain in DOMAINS:
        path = runs / f"duda_{domain}" / "student.safetensors"
        if not path.is_file():
            log(f"adapting a student to '{domain}' (DUDA, from the shared init)")
            result = run_distill(
                distill_config(args, data_root, "duda", domain, str(init)), path.parent, log=log
            )
            info[f"{domain}_report"] = {
                k: result.report.get(k) for k in ("method", "iters", "wall_time_s", "student")
            }
        students[domain] = path
    return init, students, info


# Row labels of the registered methods (a method without one is labelled by its name). Every method in the
# registry gets rows with its own default parameters; the two whose parameters name inputs are filled in per
# setting: layer-wise gets one row per anchor, backbone-only one head per domain.
ROW_LABELS = {
    "linear": "linear",
    "bn": "linear + BN stats",
    "backbone": "backbone-only + separate heads",
    "task-arithmetic": "task arithmetic (base = init)",
    "ties": "TIES (base = init, density 0.2)",
    "dare": "DARE (base = init, drop 0.5)",
}


def merge_plans(init: Path, domains: tuple[str, ...]) -> list[tuple[str, Any]]:
    """[(row label, MergeOptions)] for every registered merge method in this setting."""
    from edgeseg.merge.api import MergeOptions
    from edgeseg.merge.methods import REGISTRY

    plans: list[tuple[str, Any]] = []
    for name, method in REGISTRY.items():
        base = init if method.needs_base else None
        if name == "layerwise":
            plans += [
                (f"layer-wise (anchor {d})", MergeOptions(method=name, params={"anchor": str(i)}))
                for i, d in enumerate(domains)
            ]
        elif name == "backbone":
            plans.append((ROW_LABELS[name], MergeOptions(method=name, params={"heads": domains})))
        else:
            label = ROW_LABELS.get(name, f"{name}{' (base = init)' if base else ''}")
            plans.append((label, MergeOptions(method=name, base=base)))
    return plans


def merged_models(
    work: Path, init: Path, students: dict[str, Path], domains: tuple[str, ...]
) -> list[tuple[str, Path]]:
    """Every merge of `domains`' students -> [(row label, checkpoint)]."""
    from edgeseg.merge.api import merge_checkpoints

    folder = work / "merged" / "_".join(domains)
    inputs = [students[d] for d in domains]
    out = []
    for label, options in merge_plans(init, domains):
        anchor = dict(options.params).get("anchor")
        path = folder / f"{options.method}{'_' + anchor if anchor is not None else ''}.safetensors"
        merge_checkpoints(inputs, path, options)
        out.append((label, path))
    return out


def evaluate_rows(rows: list[tuple[str, Path]], datasets: dict[str, Any]) -> list[dict[str, Any]]:
    from edgeseg.merge.evaluation import evaluate_model
    from edgeseg.merge.multihead import load_any_model

    results = []
    for label, path in rows:
        scores = evaluate_model(load_any_model(path), datasets, label)
        results.append({"model": label, **scores.to_json()})
        log(
            f"  {label:36s} "
            + "  ".join(f"{d} {100 * v:5.2f}" for d, v in scores.miou.items())
            + f"  H {100 * scores.harmonic_mean:5.2f}"
        )
    return results


def _table_head(domains: list[str], extra: list[str]) -> list[str]:
    """A setting's heading and table header: model, one mIoU column per domain, then `extra` columns."""
    columns = ["model", *(f"{d} mIoU" for d in domains), *extra]
    return [
        f"## {len(domains)} target domains: {', '.join(domains)}",
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
    ]


def markdown(info: dict[str, Any]) -> str:
    lines = [
        "# Merging domain-adapted students (synthetic benchmark)",
        "",
        f"Command: `{info['command']}`  ",
        f"Wall time: {info['wall_time_s']:.0f} s; {info['machine']}.",
        "",
        info["setup"],
        "",
    ]
    for setting in info["settings"]:
        domains = setting["domains"]
        lines += _table_head(domains, ["H-mean"])
        best = max(r["harmonic_mean"] or 0 for r in setting["rows"])
        for r in setting["rows"]:
            h = r["harmonic_mean"] or 0
            cells = [f"{100 * (r['miou'][d] or 0):.2f}" for d in domains]
            hm = f"**{100 * h:.2f}**" if h == best else f"{100 * h:.2f}"
            lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {hm} |")
        lines.append("")
    scan = info.get("scan")
    if scan:
        lines += [
            "## Linear path between the city and night students",
            "",
            f"![LMC scan]({Path(scan['png']).name})" if scan.get("png") else "",
            "",
            "| lambda (weight of city) | " + " | ".join(f"{d} mIoU" for d in scan["miou"]) + " | H-mean |",
            "|---:|" + "---:|" * (len(scan["miou"]) + 1),
        ]
        for i, lam in enumerate(scan["lambdas"]):
            lines.append(
                f"| {lam:.1f} | "
                + " | ".join(f"{100 * v[i]:.2f}" for v in scan["miou"].values())
                + f" | {100 * scan['harmonic_mean'][i]:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return m, var**0.5


def seed_summary(pieces: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per setting and row over seeds: H-mean and per-domain mIoU (mean, std), and the row's H-mean minus the
    best single student's H-mean *of the same seed* (the issue's "merged - best single" measure)."""
    seeds = sorted(pieces)
    settings = []
    for i, first in enumerate(pieces[seeds[0]]["settings"]):
        domains = first["domains"]
        per_seed = {s: {r["model"]: r for r in pieces[s]["settings"][i]["rows"]} for s in seeds}
        best_single = {
            s: max((r["harmonic_mean"] or 0.0) for m, r in rows.items() if m.startswith("single:"))
            for s, rows in per_seed.items()
        }
        rows = []
        for model in per_seed[seeds[0]]:
            if any(model not in per_seed[s] for s in seeds):
                continue
            h = [per_seed[s][model]["harmonic_mean"] or 0.0 for s in seeds]
            gain = [h[j] - best_single[s] for j, s in enumerate(seeds)]
            rows.append(
                {
                    "model": model,
                    "miou": {
                        d: _mean_std([per_seed[s][model]["miou"][d] or 0.0 for s in seeds]) for d in domains
                    },
                    "harmonic_mean": _mean_std(h),
                    "gain_over_best_single": _mean_std(gain),
                    "gain_per_seed": gain,
                }
            )
        settings.append({"domains": domains, "seeds": seeds, "rows": rows})
    return {"seeds": seeds, "settings": settings}


def seeds_markdown(summary: dict[str, Any], command: str) -> str:
    pct = lambda ms: f"{100 * ms[0]:.2f} ± {100 * ms[1]:.2f}"  # noqa: E731
    lines = [
        "# Merging domain-adapted students over seeds (synthetic benchmark)",
        "",
        f"Command: `{command}` (merges the committed pieces in `merging_runs/`; each piece's own command is "
        "in its JSON).",
        "",
        "Per seed: the DUDA students of benchmarks/adaptation.py with that seed, merged from the same seed's "
        "shared init, scored on the test split. mIoU and H-mean in %, mean ± std over seeds "
        f"{summary['seeds']}; 'vs best single' = the row's H-mean minus the best single student's H-mean of "
        "the same seed.",
        "",
    ]
    for setting in summary["settings"]:
        domains = setting["domains"]
        lines += _table_head(domains, ["H-mean", "vs best single", "per seed"])
        for r in setting["rows"]:
            cells = [pct(r["miou"][d]) for d in domains]
            g = r["gain_over_best_single"]
            per = ", ".join(f"{100 * v:+.2f}" for v in r["gain_per_seed"])
            lines.append(
                f"| {r['model']} | " + " | ".join(cells) + f" | {pct(r['harmonic_mean'])} | "
                f"{100 * g[0]:+.2f} ± {100 * g[1]:.2f} | {per} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def tabulate_seeds(results: Path, seeds: list[int]) -> None:
    from edgeseg.io_utils import write_json_atomic, write_text_atomic

    pieces = {}
    for seed in seeds:
        path = results / "merging_runs" / f"seed{seed}.json"
        if path.is_file():
            pieces[seed] = json.loads(path.read_text())
        else:
            log(f"no piece for seed {seed} ({path}): left out")
    if not pieces:
        raise SystemExit(f"no merging pieces under {results / 'merging_runs'}")
    command = "python benchmarks/merging.py " + " ".join(sys.argv[1:])
    summary = {"command": command, **seed_summary(pieces)}
    write_json_atomic(results / "merging_seeds.json", summary)
    write_text_atomic(results / "merging_seeds.md", seeds_markdown(summary, command))
    log(f"{len(pieces)} seed(s) -> {results / 'merging_seeds.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for data, runs and merged models")
    parser.add_argument(
        "--init",
        default=None,
        help="shared initial checkpoint of the students; 'preset' = the "
        "preset's shipped init with --seed's head (students of benchmarks/adaptation.py)",
    )
    parser.add_argument("--student", action="append", default=[], help="DOMAIN=PATH, one per domain")
    parser.add_argument(
        "--data", type=Path, default=None, help="synthetic data root (default <work>/synthetic)"
    )
    parser.add_argument("--preset", default="synthetic", help="distill preset for training")
    parser.add_argument("--iters", type=int, default=0, help="distill iterations (0 = the preset's)")
    parser.add_argument("--set", action="append", default=[], help="extra distill override key=value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="val images per domain (default all)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "val"),
        help="split scored (test: rendered from its own stream, no choice made on it)",
    )
    parser.add_argument("--test-images", type=int, default=60, help="test images per domain")
    parser.add_argument(
        "--tabulate-seeds",
        default="",
        help="run nothing: merge the committed pieces merging_runs/seed<N>.json of these seeds (e.g. 0,1,2)",
    )
    args = parser.parse_args()
    if args.tabulate_seeds:
        tabulate_seeds(args.results, [int(s) for s in args.tabulate_seeds.split(",") if s])
        return
    if args.work is None:
        parser.error("--work is required (unless --tabulate-seeds)")
    args.set = [f"synthetic.test_images={args.test_images}", *args.set]

    import torch

    from edgeseg.io_utils import write_json_atomic, write_text_atomic
    from edgeseg.merge.evaluation import domain_datasets
    from edgeseg.merge.scan import scan_pair

    torch.set_num_threads(args.threads)
    t0 = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    data_root = args.data or args.work / "synthetic"
    init, students, prep = prepare_models(args, data_root)
    datasets = domain_datasets(data_root, DOMAINS, "synthetic", args.split, args.limit)

    settings = []
    for domains in SETTINGS:
        log(f"setting: {', '.join(domains)}")
        sub = {d: datasets[d] for d in domains}
        init_name = (
            "shared init (pretrained encoder, untrained head)"
            if args.init == "preset"
            else "shared init (source only)"
        )
        rows = [(init_name, init)] + [(f"single: {d} student", students[d]) for d in domains]
        rows += merged_models(args.work, init, students, domains)
        settings.append({"domains": list(domains), "rows": evaluate_rows(rows, sub)})

    log("linear-mode-connectivity scan city <-> night")
    scan_dir = args.work / "scan_city_night"
    scan = scan_pair(
        students["city"], students["night"], {d: datasets[d] for d in ("city", "night")}, scan_dir
    )
    args.results.mkdir(parents=True, exist_ok=True)
    for ext in ("csv", "json", "png"):
        shutil.copyfile(scan_dir / f"scan.{ext}", args.results / f"merging_scan_city_night.{ext}")
    scan_info = scan.to_json()
    scan_info["png"] = str(args.results / "merging_scan_city_night.png")

    info = {
        "command": "python benchmarks/merging.py " + " ".join(sys.argv[1:]),
        "wall_time_s": time.time() - t0,
        "machine": f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "setup": (
            "Students: one per target domain, adapted with `edgeseg distill` (DUDA, preset "
            f"'{args.preset}') from one shared init ("
            + (
                "the preset's shipped pretrained encoder with the seed's head: the students of "
                "benchmarks/adaptation.py, seed " + str(args.seed)
                if args.init == "preset"
                else "a source-only small model"
            )
            + "). Evaluation: the "
            f"synthetic {args.split} split of each domain{'' if args.limit is None else f' (first {args.limit} images)'}; "  # noqa: E501
            "mIoU in %, H-mean = harmonic mean over the domains of the setting. The best H-mean is bold."
        ),
        "models": {"init": str(init), **{d: str(p) for d, p in students.items()}},
        "preparation": prep,
        "settings": settings,
        "scan": scan_info,
    }
    info = json.loads(json.dumps(info, default=str))
    write_json_atomic(args.results / "merging_runs" / f"seed{args.seed}.json", info)
    write_json_atomic(args.results / "merging.json", info)
    write_text_atomic(args.results / "merging.md", markdown(info))
    log(f"done in {time.time() - t0:.0f}s -> {args.results / 'merging.md'}")


if __name__ == "__main__":
    main()
