"""Peak memory and wall time of `edgeseg merge` on 2, 4 and 8 MiT-B5-sized checkpoints.

Creates random `segformer_b5` checkpoints (84.7M parameters, ~340 MB each) in a temporary folder, then
runs every merge in a fresh child process that reports its own resident memory: the RSS after imports
(`baseline`), the peak RSS (`VmHWM`), and the difference (what the merge itself needed). A naive merge
(load every state dict with `safetensors.torch.load_file`, average in memory) is measured next to it for
comparison.

    python benchmarks/merge_memory.py                       # writes benchmarks/results/merge_memory.{json,md}
    python benchmarks/merge_memory.py --counts 2 4 --tmp /scratch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status() -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon / RssFile of this process in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs), so the peak is the merge's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from edgeseg.merge.api import MergeOptions, merge_checkpoints

    if args.method == "naive":
        from safetensors.torch import load_file, save_file
    _reset_peak()
    base = _status()
    start = time.perf_counter()
    if args.method == "naive":
        states = [load_file(p) for p in args.inputs]
        merged = {
            k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype)
            if states[0][k].is_floating_point()
            else states[0][k]
            for k in states[0]
        }
        save_file(merged, args.out)
    else:
        inputs = args.inputs[1:] if args.method == "ties" else args.inputs
        options = MergeOptions(method=args.method, base=args.inputs[0] if args.method == "ties" else None)
        merge_checkpoints(inputs, args.out, options)
    seconds = time.perf_counter() - start
    end = _status()
    print(
        json.dumps(
            {
                "baseline_rss": base["VmRSS"],
                "peak_rss": end["VmHWM"],
                "seconds": seconds,
                "end_rss_anon": end.get("RssAnon"),
                "end_rss_file": end.get("RssFile"),
            }
        )
    )


def make_checkpoints(folder: Path, count: int) -> list[Path]:
    """`count` different random segformer_b5 checkpoints (built one at a time to keep memory flat)."""
    import torch

    from edgeseg.checkpoint import model_meta, save_state
    from edgeseg.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("segformer_b5", num_classes=19)
    meta = model_meta(model)
    state = model.state_dict()
    paths = []
    for i in range(count):
        path = folder / f"b5_{i}.safetensors"
        g = torch.Generator().manual_seed(i)
        noisy = {
            k: (v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v)
            for k, v in state.items()
        }
        save_state(noisy, path, meta)
        del noisy
        paths.append(path)
    return paths


def run_child(method: str, inputs: list[Path], out: Path, threads: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--method",
        method,
        "--out",
        str(out),
        "--threads",
        str(threads),
        *map(str, inputs),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--naive-counts", type=int, nargs="*", default=[2, 4])
    parser.add_argument(
        "--ties-count", type=int, default=8, help="also measure TIES (+ a base) at this count"
    )
    parser.add_argument(
        "--tmp", type=Path, default=None, help="where the random checkpoints go (default /tmp)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="bn", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    needed = max(args.counts + args.naive_counts + [args.ties_count + 1])
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="merge_memory_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = make_checkpoints(folder, needed)
        print(f"created {needed} checkpoints in {time.perf_counter() - t0:.0f}s", flush=True)
        size = paths[0].stat().st_size
        cases = [("bn", n) for n in args.counts] + [("naive", n) for n in args.naive_counts]
        if args.ties_count:
            cases.append(("ties", args.ties_count))
        for method, n in cases:
            inputs = paths[: n + 1] if method == "ties" else paths[:n]  # ties: paths[0] is the base
            r = run_child(method, inputs, folder / "merged.safetensors", args.threads)
            r.update(
                method=method, models=n, checkpoint_bytes=size, merge_rss=r["peak_rss"] - r["baseline_rss"]
            )
            r["merge_rss_over_checkpoint"] = r["merge_rss"] / size
            rows.append(r)
            print(
                f"{method:6s} x{n}: peak {r['peak_rss'] / 2**20:7.0f} MiB (baseline {r['baseline_rss'] / 2**20:.0f}, "
                f"merge {r['merge_rss'] / 2**20:.0f} MiB = {r['merge_rss_over_checkpoint']:.2f} x one checkpoint), "
                f"{r['seconds']:.1f}s",
                flush=True,
            )

    import torch

    info = {
        "command": " ".join(["python benchmarks/merge_memory.py", *sys.argv[1:]]),
        "arch": "segformer_b5 (MiT-B5 + SegFormer head, 19 classes)",
        "checkpoint_bytes": size,
        "threads": args.threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    from edgeseg.io_utils import write_json_atomic, write_text_atomic

    write_json_atomic(args.results / "merge_memory.json", info)
    write_text_atomic(args.results / "merge_memory.md", _markdown(info))


def _markdown(info: dict) -> str:
    mib = 2**20
    lines = [
        "# Merge memory: peak RSS and wall time, MiT-B5-sized checkpoints",
        "",
        f"Command: `{info['command']}`  ",
        f"Checkpoint: {info['arch']}, {info['checkpoint_bytes'] / mib:.0f} MiB each; torch {info['torch']}, "
        f"{info['threads']} thread(s), {info['cpu_count']} shared CPU cores.",
        "",
        "`merge RSS` = peak RSS during the merge minus the RSS after imports (each merge runs in a fresh",
        "process). `naive` loads every state dict with `safetensors.torch.load_file` and averages in memory.",
        "Wall time includes hashing the inputs for provenance (edgeseg) and writing the output.",
        "",
        "| method | models | baseline RSS (MiB) | peak RSS (MiB) | merge RSS (MiB) | merge RSS / one checkpoint | time (s) |",  # noqa: E501
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in info["rows"]:
        name = {"bn": "edgeseg bn", "ties": "edgeseg ties (+base)", "naive": "naive load-all"}[r["method"]]
        lines.append(
            f"| {name} | {r['models']} | {r['baseline_rss'] / mib:.0f} | {r['peak_rss'] / mib:.0f} | "
            f"{r['merge_rss'] / mib:.0f} | {r['merge_rss_over_checkpoint']:.2f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
