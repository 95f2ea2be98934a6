"""Per-domain class-pixel distribution of the synthetic benchmark (the README table).

    python benchmarks/synthetic_stats.py            # renders 100 train images per domain at 256x512

Writes benchmarks/results/synthetic_stats.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.data.labels import CLASSES  # noqa: E402
from edgeseg.data.sampling import label_counts  # noqa: E402
from edgeseg.data.synthetic import DEFAULT_DOMAINS, render_scene, scene_rng  # noqa: E402
from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--size", default="256x512")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))

    counts, ignored, seconds, present = {}, {}, {}, {}
    for domain in DEFAULT_DOMAINS:
        total = np.zeros(len(CLASSES), np.int64)
        images_with = np.zeros(len(CLASSES), np.int64)
        ign = 0
        t0 = time.perf_counter()
        for i in range(args.num):
            _, label = render_scene(scene_rng(args.seed, domain, "train", i), domain, (h, w))
            c = label_counts(label)
            total += c
            images_with += c > 0
            ign += int((label == 255).sum())
        seconds[domain] = (time.perf_counter() - t0) / args.num
        counts[domain], ignored[domain], present[domain] = total, ign, images_with

    lines = [
        "# Synthetic benchmark: class-pixel distribution per domain",
        "",
        "`"
        + " ".join(["python benchmarks/synthetic_stats.py", *map(shlex.quote, argv or sys.argv[1:])])
        + "`",
        "",
        f"{args.num} training images per domain at {h}x{w}, seed {args.seed}: % of labelled pixels "
        "(in brackets: % of images containing the class).",
        "",
        "| class | " + " | ".join(DEFAULT_DOMAINS) + " |",
        "| --- |" + " ---: |" * len(DEFAULT_DOMAINS),
    ]
    for c, name in enumerate(CLASSES):
        cells = []
        for d in DEFAULT_DOMAINS:
            share = 100 * counts[d][c] / counts[d].sum()
            cells.append(f"{share:.2f} ({100 * present[d][c] / args.num:.0f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| *ignored (ego bonnet)* | "
        + " | ".join(f"{100 * ignored[d] / (args.num * h * w):.2f}" for d in DEFAULT_DOMAINS)
        + " |"
    )
    lines.append(
        "| *render ms / image* | " + " | ".join(f"{1000 * seconds[d]:.0f}" for d in DEFAULT_DOMAINS) + " |"
    )
    lines += [
        "",
        f"Render times: one process, wall clock, on {os.cpu_count()} CPU cores shared with other jobs "
        "(measured while other jobs ran; an idle core is faster).",
    ]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "synthetic_stats.md", text)
    write_json_atomic(
        args.out / "synthetic_stats.json",
        {
            "num": args.num,
            "size": [h, w],
            "seed": args.seed,
            "classes": list(CLASSES),
            "pixels": {d: counts[d].tolist() for d in DEFAULT_DOMAINS},
            "images_with_class": {d: present[d].tolist() for d in DEFAULT_DOMAINS},
            "ignored_pixels": ignored,
            "render_seconds_per_image": seconds,
        },
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
