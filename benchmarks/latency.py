"""CPU latency of SegFormer B0/B1/B2 x backends x sizes on this machine, next to the roofline.

For every architecture and input size this script
  1. exports a static-shape ONNX model (`edgeseg export` when that command is available, otherwise a plain
     `torch.onnx.export` of the model - the JSON records which),
  2. benchmarks it with the `edgeseg bench` library (ONNX Runtime CPU) interleaved with a PyTorch eager
     reference of the same network, end to end with the stage breakdown,
  3. measures this CPU's single-precision matrix-multiply throughput with numpy on `--threads` threads and
     divides the graph's FLOPs by it: the roofline, a lower bound on the inference latency on this CPU.

Weights are random (latency does not depend on their values). Results go to
benchmarks/results/latency_<device>.{json,csv,md,png}.

Run (about 20-30 minutes on a busy 2-core VM):
  nohup python benchmarks/latency.py > benchmarks/results/latency.log 2>&1 &
Quick check:
  python benchmarks/latency.py --archs segformer_b0 --sizes 256x512 --iters 3 --iters-large 2
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.bench.core import BenchConfig, run_benchmark  # noqa: E402
from edgeseg.bench.device import device_label, read_device_facts  # noqa: E402
from edgeseg.bench.runner import RunPlan  # noqa: E402
from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402
from edgeseg.sizes import parse_size  # noqa: E402

LARGE_PIXELS = 1024 * 2048  # at and above this size: fewer iterations, one architecture per group


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ roofline
_SGEMM = """
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b  # warm-up: thread pool start, page faults
times = []
for _ in range(repeats):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
times.sort()
flop = 2.0 * n ** 3
print(json.dumps({"n": n, "best_gflops": flop / times[0] / 1e9, "median_gflops": flop / times[len(times) // 2] / 1e9}))
"""


def measure_sgemm(threads: int, sizes: Sequence[int] = (1024, 2048), repeats: int = 7) -> dict[str, Any]:
    """float32 matmul GFLOP/s with numpy's BLAS pinned to `threads` threads (fresh process: the env var
    must be set before numpy loads its BLAS)."""
    env = {
        **os.environ,
        **{
            v: str(threads)
            for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
        },
    }
    runs = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", _SGEMM, str(n), str(repeats)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    return {"threads": threads, "runs": runs, "peak_gflops": max(r["best_gflops"] for r in runs)}


# --------------------------------------------------------------------------------------------- export
def edgeseg_export_available() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "edgeseg", "export", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    return done.returncode == 0


def make_checkpoint(arch: str, path: Path) -> Path:
    if not path.exists():
        import torch

        from edgeseg.checkpoint import save_model
        from edgeseg.models.registry import create_model

        torch.manual_seed(0)
        save_model(create_model(arch).eval(), path)
    return path


def export_onnx(arch: str, size: tuple[int, int], ckpt: Path, out: Path, use_cli: bool) -> str:
    """Static-shape ONNX with logits output (post-processing is timed separately, as for torch)."""
    if out.exists():
        return "cached"
    h, w = size
    if use_cli:
        cmd = [
            sys.executable,
            "-m",
            "edgeseg",
            "export",
            str(ckpt),
            "--out",
            str(out),
            "--size",
            f"{h}x{w}",
            "--output",
            "logits",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"edgeseg export failed: {done.stderr.strip()[-500:]}")
        return "edgeseg export --output logits"
    # `edgeseg export` not there yet: the same inference twin it exports, through torch.onnx.export, plus the
    # metadata the runtimes read (no parity check here - that is the export command's job)
    import onnx
    import torch

    from edgeseg.checkpoint import load_model
    from edgeseg.deploy.export.export_model import ExportSegmentor
    from edgeseg.deploy.runtime import onnx_meta
    from edgeseg.io_utils import atomic_path

    model = load_model(ckpt)
    net = ExportSegmentor(model, output="logits")
    with atomic_path(out) as tmp, torch.no_grad():
        torch.onnx.export(
            net,
            torch.zeros(1, 3, h, w),
            str(tmp),
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        n = model.num_classes
        meta = {
            "format": onnx_meta.FORMAT,
            "format_version": onnx_meta.FORMAT_VERSION,
            "arch": arch,
            "num_classes": n,
            "classes": [f"class{i}" for i in range(n)],
            "palette": [[(37 * i) % 256, (97 * i) % 256, (173 * i) % 256] for i in range(n)],
            "mean": [123.675, 116.28, 103.53],
            "std": [58.395, 57.12, 57.375],
            "output": "logits",
            "preprocess": False,
            "input_size": [h, w],
            "batch": 1,
            "precision": "fp32",
            "opset": 17,
        }
        onnx.helper.set_model_props(proto, onnx_meta.encode(meta))
        onnx.save(proto, str(tmp))
    return (
        "torch.onnx.export(ExportSegmentor(model, output='logits')), opset 17 (edgeseg export CLI not ready)"
    )


# --------------------------------------------------------------------------------------------- output
def roofline_rows(reports: list[dict[str, Any]], arch_of: dict[str, str], peak_gflops: float) -> list[dict]:
    gmacs_of = {
        (arch_of[r["model"]], tuple(r["input_size"])): r["graph"]["gmacs"]
        for rep in reports
        for r in rep["results"]
        if r["graph"] and r["graph"].get("gmacs")
    }
    rows = []
    for rep in reports:
        for r in rep["results"]:
            arch, size = arch_of[r["model"]], tuple(r["input_size"])
            gmacs = gmacs_of.get((arch, size))
            bound_ms = 2 * gmacs / peak_gflops * 1000 if gmacs else None
            infer = r["stages_ms"]["infer"]["median"]
            rows.append(
                {
                    "arch": arch,
                    "backend": r["backend"],
                    "size": f"{size[0]}x{size[1]}",
                    "iterations": r["iterations"],
                    "e2e_median_ms": round(r["latency_ms"]["median"], 1),
                    "e2e_p90_ms": round(r["latency_ms"]["p90"], 1),
                    "e2e_mean_ms": round(r["latency_ms"]["mean"], 1),
                    "cv": round(r["latency_ms"]["cv"], 3),
                    "infer_median_ms": round(infer, 1),
                    "pre_median_ms": round(r["stages_ms"]["preprocess"]["median"], 1),
                    "post_median_ms": round(r["stages_ms"]["postprocess"]["median"], 1),
                    "fps": round(r["fps"], 2),
                    "gmacs": round(gmacs, 2) if gmacs else None,
                    "gflops": round(2 * gmacs, 2) if gmacs else None,
                    "roofline_ms": round(bound_ms, 1) if bound_ms else None,
                    "infer_over_roofline": round(infer / bound_ms, 2) if bound_ms else None,
                    "host_rss_delta_mb": r["memory"]["host_rss_delta_mb"],
                }
            )
    return rows


def write_plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeseg.io_utils import atomic_path

    def px(size: str) -> float:
        h, w = (int(v) for v in size.split("x"))
        return h * w / 1e6

    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = {}
    for arch in sorted({r["arch"] for r in rows}):
        for backend, style in (("onnxruntime-cpu", "-o"), ("onnxruntime-cuda", "-o"), ("torch", "--s")):
            pts = sorted(
                (px(r["size"]), r["infer_median_ms"])
                for r in rows
                if r["arch"] == arch and r["backend"] == backend
            )
            if pts:
                (line,) = ax.plot(
                    *zip(*pts, strict=True), style, color=colors.get(arch), label=f"{arch} {backend}"
                )
                colors[arch] = line.get_color()
        bound = sorted(
            {(px(r["size"]), r["roofline_ms"]) for r in rows if r["arch"] == arch and r["roofline_ms"]}
        )
        if bound:
            ax.plot(*zip(*bound, strict=True), ":", color=colors.get(arch), label=f"{arch} roofline")
    sizes = sorted({r["size"] for r in rows}, key=px)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([px(s) for s in sizes], sizes)
    ax.minorticks_off()
    ax.set_xlabel("input size (H x W)")
    ax.set_ylabel("inference latency, median ms (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def markdown_table(rows: list[dict]) -> str:
    head = (
        "| arch | backend | size | iters | e2e median ms | e2e p90 ms | CV | infer median ms | GFLOPs | "
        "roofline ms | infer / roofline |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['arch']} | {r['backend']} | {r['size']} | {r['iterations']} | {r['e2e_median_ms']} | "
        f"{r['e2e_p90_ms']} | {r['cv']:.0%} | {r['infer_median_ms']} | {r['gflops']} | "
        f"{r['roofline_ms']} | {r['infer_over_roofline']} |\n"
        for r in rows
    )
    return head + body


# ----------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["segformer_b0", "segformer_b1", "segformer_b2"])
    ap.add_argument("--sizes", nargs="+", default=["512x512", "512x1024", "1024x2048"])
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager reference")
    ap.add_argument(
        "--threads", type=int, default=2, help="threads for ONNX Runtime, torch and the sgemm peak"
    )
    ap.add_argument(
        "--warmup", type=int, default=1, help="warm-up rounds below 1024x2048 (after the load probe)"
    )
    ap.add_argument("--iters", type=int, default=5, help="measured iterations up to 512x512")
    ap.add_argument(
        "--iters-mid", type=int, default=3, help="measured iterations above 512x512, below 1024x2048"
    )
    ap.add_argument(
        "--iters-large",
        type=int,
        default=2,
        help="measured iterations at >= 1024x2048 (no warm-up round: the load probe is the first run)",
    )
    ap.add_argument("--models-dir", type=Path, default=Path("/tmp/edgeseg_latency_models"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    started = time.time()
    device = read_device_facts()
    label = device_label(device)
    log(f"device {label}; measuring sgemm on {args.threads} threads")
    sgemm_before = measure_sgemm(args.threads)
    log(f"sgemm peak {sgemm_before['peak_gflops']:.1f} GFLOP/s")

    use_cli = edgeseg_export_available()
    log("exporting with `edgeseg export`" if use_cli else "`edgeseg export` not available: torch.onnx.export")
    args.models_dir.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes]
    ckpts = {a: make_checkpoint(a, args.models_dir / f"{a}.safetensors") for a in args.archs}
    exported: dict[str, str] = {}
    arch_of: dict[str, str] = {}
    onnx_of: dict[tuple[str, tuple[int, int]], Path] = {}
    for size in sizes:
        for arch in args.archs:
            out = args.models_dir / f"{arch}_{size[0]}x{size[1]}.onnx"
            exported[out.name] = export_onnx(arch, size, ckpts[arch], out, use_cli)
            onnx_of[(arch, size)] = out
            arch_of[str(out)] = arch
            log(f"exported {out.name} ({exported[out.name]})")
    for arch, ckpt in ckpts.items():
        arch_of[str(ckpt)] = arch

    reports = []
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)  # the torch backend runs in this process
    for size in sizes:
        large = size[0] * size[1] >= LARGE_PIXELS
        # at 1024x2048 each architecture is its own interleaved group (ORT vs torch) to bound peak memory
        groups = [[a] for a in args.archs] if large else [list(args.archs)]
        for archs in groups:
            models = [onnx_of[(a, size)] for a in archs]
            if not args.no_torch:
                models += [ckpts[a] for a in archs]
            iters = (
                args.iters_large
                if large
                else args.iters
                if size[0] * size[1] <= 512 * 512
                else args.iters_mid
            )
            plan = RunPlan(warmup_iters=0 if large else args.warmup, iters=iters)
            log(f"benchmarking {size[0]}x{size[1]}: {', '.join(m.name for m in models)} ({plan.iters} iters)")
            config = BenchConfig(
                models=models,
                sizes=[size],
                plan=plan,
                threads=args.threads,
                command=["python", "benchmarks/latency.py", *(argv or sys.argv[1:])],
            )
            report = run_benchmark(config)  # .onnx -> ONNX Runtime, .safetensors -> torch (runtimes "auto")
            for r in report["results"]:
                log(
                    f"  {r['model_name']:28s} {r['backend']:16s} median {r['latency_ms']['median']:9.1f} ms "
                    f"(infer {r['stages_ms']['infer']['median']:.1f}), CV {r['latency_ms']['cv']:.0%}"
                )
            reports.append(report)

    sgemm_after = measure_sgemm(args.threads)
    peak = max(sgemm_before["peak_gflops"], sgemm_after["peak_gflops"])
    rows = roofline_rows(reports, arch_of, peak)
    result = {
        "command": " ".join(["python", "benchmarks/latency.py", *(argv or sys.argv[1:])]),
        "device_label": label,
        "device": device,
        "minutes": round((time.time() - started) / 60, 1),
        "sgemm": {"before": sgemm_before, "after": sgemm_after, "peak_gflops_used": peak},
        "export": exported,
        "rows": rows,
        "bench_reports": reports,
        "notes": [
            "weights are random; latency does not depend on their values",
            f"iterations per case: {args.iters} up to 512x512, {args.iters_mid} below 1024x2048 (warm-up "
            f"{args.warmup} round), {args.iters_large} at 1024x2048 (no warm-up round); every case first runs "
            "once untimed when it is opened (the load probe) - few iterations because this CPU is slow",
            "roofline_ms = graph GFLOPs / measured numpy sgemm peak GFLOP/s: a lower bound, it ignores "
            "memory traffic and the non-matmul ops (norms, softmax, GELU, resizes)",
            "the torch rows (PyTorch eager, same pre/post-processing) use the GFLOPs of the same "
            "architecture's ONNX graph",
        ],
    }
    out_dir = args.out_dir
    stem = f"latency_{label}"
    write_json_atomic(out_dir / f"{stem}.json", result)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / f"{stem}.csv", buf.getvalue())
    write_text_atomic(
        out_dir / f"{stem}.md",
        f"Device: {label}; sgemm peak {peak:.1f} GFLOP/s on {args.threads} "
        f"threads; command: `{result['command']}`\n\n" + markdown_table(rows),
    )
    try:
        write_plot(
            rows,
            out_dir / f"{stem}.png",
            f"{label}: inference latency vs roofline (sgemm {peak:.0f} GFLOP/s, {args.threads} threads)",
        )
    except ImportError:
        log("matplotlib not installed: no plot")
    log(f"done in {result['minutes']} min -> {out_dir}/{stem}.*")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
