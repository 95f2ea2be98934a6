"""Measure the synthetic benchmark's domain gap: source-only model vs. per-target oracles.

A small model is trained on `source` labels only, and one "oracle" per target domain on that
target's own labels (same recipe, same iterations). Each is evaluated on every target's val split.
The gap (oracle - source-only mIoU) is the room unsupervised adaptation has to close.

    python benchmarks/domain_gap.py                      # full run (~20 min on 2 CPU cores)
    python benchmarks/domain_gap.py --iters 20 --num 16  # smoke test

Writes benchmarks/results/domain_gap.{json,md} (with the exact command and timings).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.data.datasets import load_dataset  # noqa: E402
from edgeseg.data.synthetic import ensure_dataset  # noqa: E402
from edgeseg.data.torch_dataset import TorchSegDataset  # noqa: E402
from edgeseg.data.transforms import TrainTransform  # noqa: E402
from edgeseg.evaluate import evaluate_dataset, harmonic_mean, make_predictor, torch_logits_fn  # noqa: E402
from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402
from edgeseg.models.registry import create_model  # noqa: E402
from edgeseg.training import train_supervised  # noqa: E402

TARGETS = ("city", "night", "fog", "rain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "synth_gap")  # /data/ is git-ignored
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--model", default="segformer_small")
    p.add_argument("--size", default="128x256", help="rendered image HxW")
    p.add_argument("--crop", default="128x256", help="training crop HxW")
    p.add_argument("--num", type=int, default=150, help="training images per domain")
    p.add_argument("--val-num", type=int, default=30, help="validation images per domain")
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3, help="encoder lr (head x10); high: trained from scratch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; 1 is fastest for small models on a shared machine")
    p.add_argument("--targets", default=",".join(TARGETS))
    return p.parse_args(argv)


def hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.split("x"))
    return h, w


def train_on(domain: str, args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(args.seed)
    model = create_model(args.model, num_classes=19)
    crop = hw(args.crop)
    size = hw(args.size)
    transform = TrainTransform(crop=crop, scale=(max(size), min(size)), ratio_range=(0.75, 1.5))
    train = TorchSegDataset(load_dataset("synthetic", args.data, "train", domain), transform)
    loader = DataLoader(train, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=0)
    hist = train_supervised(model, loader, iters=args.iters, lr=args.lr, description=f"train {domain}")
    return model, hist.to_json()


def evaluate_on(model: torch.nn.Module, domain: str, args: argparse.Namespace) -> dict:
    ds = load_dataset("synthetic", args.data, "val", domain)
    res = evaluate_dataset(make_predictor(torch_logits_fn(model)), ds)
    return res.to_json()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    targets = [t for t in args.targets.split(",") if t]
    t0 = time.perf_counter()
    ensure_dataset(args.data, ["source", *targets], num=args.num, size=hw(args.size), seed=args.seed,
                   splits={"train": args.num, "val": args.val_num})
    render_s = time.perf_counter() - t0

    runs: dict[str, dict] = {}
    src_model, src_hist = train_on("source", args)
    runs["source_only"] = {"train": src_hist,
                           "eval": {d: evaluate_on(src_model, d, args) for d in ["source", *targets]}}
    for t in targets:
        oracle, hist = train_on(t, args)
        runs[f"oracle_{t}"] = {"train": hist, "eval": {t: evaluate_on(oracle, t, args)}}

    rows = []
    for t in targets:
        src = runs["source_only"]["eval"][t]["miou"]
        orc = runs[f"oracle_{t}"]["eval"][t]["miou"]
        rows.append({"domain": t, "source_only": src, "oracle": orc, "gap": orc - src})
    summary = {
        "command": " ".join(["python benchmarks/domain_gap.py", *map(shlex.quote, argv or sys.argv[1:])]),
        "model": args.model, "iters": args.iters, "batch": args.batch, "crop": args.crop, "size": args.size,
        "num_train_per_domain": args.num, "num_val_per_domain": args.val_num, "lr": args.lr, "seed": args.seed,
        "source_val_miou": runs["source_only"]["eval"]["source"]["miou"],
        "rows": rows,
        "harmonic_mean": {"source_only": harmonic_mean([r["source_only"] for r in rows]),
                          "oracle": harmonic_mean([r["oracle"] for r in rows])},
        "seconds": {"render": round(render_s, 1), "total": round(time.perf_counter() - t0, 1)},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                    "cpu": platform.processor() or platform.machine()},
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "domain_gap.json", summary)
    write_text_atomic(args.out / "domain_gap.md", to_markdown(summary))
    print(to_markdown(summary))
    return 0


def to_markdown(s: dict) -> str:
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [
        "# Synthetic benchmark: domain gap",
        "",
        f"`{s['command']}`",
        "",
        f"Model `{s['model']}` trained from scratch, {s['iters']} iterations x batch {s['batch']} "
        f"({s['crop']} crops of {s['size']} images, {s['num_train_per_domain']} training images per domain); "
        f"evaluated on {s['num_val_per_domain']} val images per domain (whole image). "
        f"Source-only model on source val: **{pct(s['source_val_miou'])} mIoU**.",
        "",
        "| target | source-only mIoU | oracle mIoU | gap |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in s["rows"]:
        lines.append(f"| {r['domain']} | {pct(r['source_only'])} | {pct(r['oracle'])} | {pct(r['gap'])} |")
    hm = s["harmonic_mean"]
    lines += [f"| harmonic mean | {pct(hm['source_only'])} | {pct(hm['oracle'])} | "
              f"{pct(hm['oracle'] - hm['source_only'])} |", "",
              f"Total {s['seconds']['total']:.0f} s (rendering {s['seconds']['render']:.0f} s) on "
              f"{s['machine']['threads']} CPU threads, torch {s['machine']['torch']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
