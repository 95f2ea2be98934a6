"""End-to-end `edgeseg demo` FPS versus inference-only FPS, same model, same size, same machine.

The question: how much of the model's throughput does the demo pipeline (decode a video in the capture
thread, render the overlay + legend + HUD in the main thread, optionally encode a recording) lose?
Goal: less than 10%.

- inference-only: `segmenter.predict([frame])` back to back over frames already decoded in memory
  (preprocess + inference + postprocess, i.e. what a frame needs to become labels).
- demo: `run_demo` on the same frames as an mp4 file, headless, every frame processed in order
  (file semantics), once without and once with `--record`.
The three are interleaved per repeat (infer, demo, demo+record, infer, ...) so background load on this
shared machine hits them alike; medians are reported, every repeat is kept in the JSON.

The model: an ONNX export of `--arch` (random weights: timing does not depend on their values), made with
`edgeseg export` when that command exists, else with torch.onnx.export in a subprocess (the result file
says which). Measurement runs in this process, which never imports torch.

    python benchmarks/demo_fps.py --arch segformer_b0 --size 256x512 --size 512x1024 --frames 60 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.demo import DemoConfig, run_demo  # noqa: E402
from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402

_TORCH_EXPORT = """
import sys, onnx, torch
from edgeseg.checkpoint import save_model
from edgeseg.data.labels import CLASSES, IMAGENET_MEAN, IMAGENET_STD, PALETTE
from edgeseg.deploy.runtime import onnx_meta
from edgeseg.models.registry import create_model
arch, h, w, ckpt, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.manual_seed(0)
model = create_model(arch, num_classes=19).eval()
save_model(model, ckpt)
if out != "-":
    torch.onnx.export(model, torch.randn(1, 3, h, w), out, input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    graph = onnx.load(out)
    meta = {"format": onnx_meta.FORMAT, "format_version": onnx_meta.FORMAT_VERSION, "arch": arch,
            "num_classes": 19, "classes": list(CLASSES), "palette": [list(c) for c in PALETTE],
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": [h, w], "batch": 1,
            "output": "logits", "preprocess": False, "precision": "fp32", "opset": 17}
    for key, value in onnx_meta.encode(meta).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, out)
"""


def export_model(arch: str, size: tuple[int, int], workdir: Path) -> tuple[Path, str]:
    """ONNX file for `arch` at `size`, and how it was made."""
    h, w = size
    ckpt, onnx_path = workdir / f"{arch}.safetensors", workdir / f"{arch}_{h}x{w}.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    has_export = (
        subprocess.run(
            [sys.executable, "-m", "edgeseg", "export", "--help"], capture_output=True, text=True, env=env
        ).returncode
        == 0
    )
    if has_export:
        subprocess.run(
            [sys.executable, "-c", _TORCH_EXPORT, arch, str(h), str(w), str(ckpt), "-"], check=True, env=env
        )
        command = [
            sys.executable,
            "-m",
            "edgeseg",
            "export",
            str(ckpt),
            "--out",
            str(onnx_path),
            "--size",
            f"{h}x{w}",
        ]
        subprocess.run(command, check=True, env=env)
        return onnx_path, (
            f"`edgeseg export {ckpt.name} --out {onnx_path.name} --size {h}x{w}` (its defaults: "
            "fp32, labels output, parity-checked against PyTorch)"
        )
    subprocess.run(
        [sys.executable, "-c", _TORCH_EXPORT, arch, str(h), str(w), str(ckpt), str(onnx_path)],
        check=True,
        env=env,
    )
    return onnx_path, (
        "torch.onnx.export of the plain model (opset 17, float NCHW input, logits output) "
        "plus edgeseg ONNX metadata; `edgeseg export` was not available"
    )


def write_clip(path: Path, frames: int, h: int, w: int) -> list[np.ndarray]:
    """A street-like synthetic clip (sky, road, moving boxes) as mp4v; returns the decoded frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    rng = np.random.default_rng(0)
    for i in range(frames):
        f = np.empty((h, w, 3), np.uint8)
        f[: h // 2] = (180, 130, 70)
        f[h // 2 :] = (90, 90, 90)
        for k in range(4):
            x = int((i * (6 + 3 * k) + k * w // 4) % w)
            cv2.rectangle(f, (x, h // 2 - h // 10), (x + w // 8, h // 2 + h // 8), (40 + 50 * k, 30, 160), -1)
        f = cv2.add(f, rng.integers(0, 20, f.shape, dtype=np.uint8))
        writer.write(f)
    writer.release()
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    cap.release()
    if len(decoded) != frames:
        raise SystemExit(f"wrote {frames} frames but decoded {len(decoded)}")
    return decoded


def inference_only_fps(segmenter, frames: list[np.ndarray]) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    for frame in frames:
        segmenter.predict([frame])
    return len(frames) / (time.perf_counter() - t0)


def measure(
    segmenter,
    model_path: Path,
    clip: Path,
    frames: list[np.ndarray],
    repeats: int,  # noqa: ANN001
    workdir: Path,
) -> list[dict[str, float]]:
    """Interleaved repeats; the order flips every repeat (ABC, CBA, ...) so slow drift cancels out."""

    def infer_only() -> dict[str, float]:
        return {"inference_only_fps": inference_only_fps(segmenter, frames)}

    def demo(record: bool) -> dict[str, float]:
        config = DemoConfig(
            model=str(model_path),
            source=str(clip),
            headless=True,
            record=workdir / "out.mp4" if record else None,
        )
        stats = run_demo(config, segmenter=segmenter)
        assert stats.frames_rendered == len(frames) and stats.frames_dropped == 0
        prefix = "demo_record" if record else "demo"
        return {
            f"{prefix}_fps": stats.end_to_end_fps,
            f"{prefix}_inference_fps": stats.inference_fps,
            f"{prefix}_render_ms_p50": stats.render.summary_ms()["p50"],
        }  # type: ignore[index]

    steps = [infer_only, lambda: demo(False), lambda: demo(True)]
    runs = []
    for repeat in range(repeats):
        run: dict[str, float] = {"repeat": repeat}
        for step in steps if repeat % 2 == 0 else steps[::-1]:
            run.update(step())
        run["demo_loss_pct"] = 100 * (1 - run["demo_fps"] / run["inference_only_fps"])
        run["demo_record_loss_pct"] = 100 * (1 - run["demo_record_fps"] / run["inference_only_fps"])
        # Measured within one run, so immune to load drift between runs: the share of time the model
        # was NOT busy (waiting for frames / for the renderer): the pipeline's own overhead.
        run["demo_idle_pct"] = 100 * (1 - run["demo_fps"] / run["demo_inference_fps"])
        run["demo_record_idle_pct"] = 100 * (1 - run["demo_record_fps"] / run["demo_record_inference_fps"])
        run = {k: round(v, 3) for k, v in run.items()}
        runs.append(run)
        print(json.dumps(run), flush=True)
    return runs


def summarise(runs: list[dict[str, float]]) -> dict[str, float | bool]:
    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    out: dict[str, float | bool] = {
        k: median(k)
        for k in (
            "inference_only_fps",
            "demo_fps",
            "demo_record_fps",
            "demo_inference_fps",
            "demo_render_ms_p50",
            "demo_record_render_ms_p50",
            "demo_record_inference_fps",
        )
    }
    # loss = median over repeats of the paired loss (each pair measured minutes apart at most)
    out["demo_loss_pct"] = round(median("demo_loss_pct"), 1)
    out["demo_record_loss_pct"] = round(median("demo_record_loss_pct"), 1)
    out["demo_idle_pct"] = round(median("demo_idle_pct"), 1)
    out["demo_record_idle_pct"] = round(median("demo_record_idle_pct"), 1)
    out["goal_met"] = out["demo_loss_pct"] < 10.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="segformer_b0")
    ap.add_argument("--onnx", type=Path, help="use this exported model instead of exporting --arch")
    ap.add_argument(
        "--size",
        action="append",
        help="model input HxW (and the clip's frame size); repeatable; default 256x512 and 512x1024",
    )
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo_fps")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.size or ["256x512", "512x1024"]]
    command = "python benchmarks/demo_fps.py " + " ".join(sys.argv[1:])
    from edgeseg.deploy.runtime.backends import open_segmenter

    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="demo_fps_") as tmp:
        workdir = Path(tmp)
        for h, w in sizes:
            if args.onnx is not None:
                model_path, made_by = args.onnx, "given (--onnx)"
            else:
                model_path, made_by = export_model(args.arch, (h, w), workdir)
            clip = workdir / f"clip_{h}x{w}.mp4"
            frames = write_clip(clip, args.frames, h, w)
            with open_segmenter(model_path, args.backend, (h, w)) as segmenter:
                for frame in frames[:5]:  # warm-up: first runs allocate
                    segmenter.predict([frame])
                runs = measure(segmenter, model_path, clip, frames, args.repeats, workdir)
            results.append(
                {
                    "model": {
                        "arch": args.arch if args.onnx is None else None,
                        "file": model_path.name,
                        "made_by": made_by,
                        "backend": segmenter.backend,
                    },
                    "size_hw": [h, w],
                    "clip_frames": args.frames,
                    "median": summarise(runs),
                    "runs": runs,
                }
            )
            print(json.dumps({"size": f"{h}x{w}", **results[-1]["median"]}), flush=True)
    result = {
        "command": command,
        "goal": "the demo loses < 10% of inference-only FPS to capture and rendering",
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "shared": "2 cores shared with other engineers' jobs; see load averages",
            "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
            "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "onnxruntime": _version("onnxruntime"),
        },
    }
    write_json_atomic(args.out.with_suffix(".json"), result)
    write_text_atomic(args.out.with_suffix(".md"), render_markdown(result))


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def render_markdown(r: dict) -> str:
    machine = r["machine"]
    summary, per_repeat = [], []
    for res in r["results"]:
        m, size = res["median"], "x".join(map(str, res["size_hw"]))
        verdict = "yes" if m["goal_met"] else "**no**"
        summary.append(
            f"| {size} | {m['inference_only_fps']:.2f} | {m['demo_fps']:.2f} | {m['demo_loss_pct']:.1f}% | "
            f"{m['demo_idle_pct']:.1f}% | {m['demo_record_fps']:.2f} | {m['demo_record_loss_pct']:.1f}% | "
            f"{m['demo_record_idle_pct']:.1f}% | {m['demo_render_ms_p50']:.1f} / "
            f"{m['demo_record_render_ms_p50']:.1f} | {verdict} |"
        )
        per_repeat += [
            f"| {size} | {x['repeat']} | {x['inference_only_fps']:.2f} | {x['demo_fps']:.2f} | "
            f"{x['demo_inference_fps']:.2f} | {x['demo_loss_pct']:.1f}% | {x['demo_idle_pct']:.1f}% | "
            f"{x['demo_record_fps']:.2f} | {x['demo_record_inference_fps']:.2f} | "
            f"{x['demo_record_loss_pct']:.1f}% | {x['demo_record_idle_pct']:.1f}% |"
            for x in res["runs"]
        ]
    first = r["results"][0]
    nl = "\n"
    return f"""# Demo pipeline FPS vs inference-only FPS

Command: `{r["command"]}`

Model: {first["model"]["arch"] or first["model"]["file"]}, backend `{first["model"]["backend"]}`; ONNX per size made by
{nl.join("- " + x["model"]["made_by"] for x in r["results"])}

Clip: {first["clip_frames"]} synthetic frames (mp4v) at the model input size,
so the demo decodes, infers and renders at one resolution. Medians over interleaved repeats; the loss
is the median of per-repeat paired losses.

Machine: {machine["cpus"]} CPUs ({machine["platform"]}), {machine["shared"]}: load average
{machine["loadavg_1_5_15_before"]} before, {machine["loadavg_1_5_15_after"]} after. onnxruntime
{machine["onnxruntime"]}, OpenCV {machine["opencv"]}.

| size | inference-only FPS | demo FPS | loss | model idle in demo | demo + record FPS | loss | model idle | render ms p50 (plain / +record) | loss < 10% |
|---|---|---|---|---|---|---|---|---|---|
{nl.join(summary)}

- inference only: `Segmenter.predict([frame])` back to back on frames already in memory.
- demo: `edgeseg demo --headless` on the clip (capture thread decodes, inference thread, main thread renders
  overlay + legend + HUD); demo + record adds `--record out.mp4` (mp4v encode in the main thread).
- loss: 1 - demo FPS / inference-only FPS, paired per repeat (separate runs, so load drift on this
  shared machine enters it in both directions).
- model idle in demo: 1 - demo FPS / the demo's own inference FPS (frames / time inside `predict`), both
  from the same run: the share of the run the model waited on capture or rendering. The difference
  between the two columns is the slowdown of `predict` itself while decode and render threads share
  the CPU cores with it.

Per repeat:

| size | repeat | inference-only FPS | demo FPS | demo inference FPS | loss | idle | demo + record FPS | its inference FPS | loss | idle |
|---|---|---|---|---|---|---|---|---|---|---|
{nl.join(per_repeat)}
"""


if __name__ == "__main__":
    main()
