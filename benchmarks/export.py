"""ONNX Runtime CPU latency and accuracy of `edgeseg export` versus the straightforward export.

    python benchmarks/export.py --work /tmp/export_bench            # renders data, trains b0, measures
    python benchmarks/export.py --work DIR --ckpt my_b0.safetensors  # measure a given segformer_b0

What is compared, all from the SAME weights, in the same process, measured interleaved (round-robin):

* `edgeseg-fp32`: `edgeseg export --output labels` (static 512x1024, labels = argmax of bilinearly
  upsampled logits inside the graph).
* `hf-fp32`: the straightforward export: the weights loaded into transformers'
  `SegformerForSemanticSegmentation`, wrapped as `argmax(interpolate(model(x).logits, input size))`, and
  `torch.onnx.export`ed (opset 17) with nothing else done.
* `edgeseg-int8`: `edgeseg export --int8 --calib <target-domain train images>`.
* `torch-eager`: the edgeseg PyTorch model, same labels computation, `torch.inference_mode`.

Latency = one `session.run` / forward on one preprocessed 512x1024 frame (no pre/post-processing, both
graphs output labels). Reported: wall-clock median and min, and per-call CPU time (thread time; with
`--threads 1` ONNX Runtime runs on the calling thread, so this is immune to time-slicing on a shared host).
Accuracy on the synthetic benchmark's target-domain val images (`edgeseg data synth`): mIoU against the
ground truth per domain, and label agreement with PyTorch.

The model: `--ckpt`, or (default) segformer_b0 trained from scratch for `--train-iters` on the labelled
synthetic domains, with LayerNorm eps 1e-5 so the transformers model computes exactly the same function.
Results: benchmarks/results/export_<host>_<threads>t.json and .md (with the exact command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.checkpoint import load_model, save_model  # noqa: E402
from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx  # noqa: E402
from edgeseg.deploy.runtime.preprocess import normalize_batch  # noqa: E402
from edgeseg.evaluate import ConfusionMatrix, mean_iou, per_class_iou  # noqa: E402
from edgeseg.io_utils import write_json_atomic, write_text_atomic  # noqa: E402

DOMAINS = ("source", "city", "night", "fog", "rain")
TARGETS = ("city", "night", "fog", "rain")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- data and model ----------------------------------------------------------------------------------------

def render_data(root: Path, size: tuple[int, int], num: int, val_num: int) -> None:
    from edgeseg.data.synthetic import render_dataset

    if (root / "synthetic.json").exists():
        return
    log(f"rendering synthetic data ({len(DOMAINS)} domains x {num}+{val_num} at {size[0]}x{size[1]})")
    render_dataset(root, DOMAINS, size=size, splits={"train": num, "val": val_num}, seed=0)


def calib_folder(data: Path, work: Path) -> Path:
    """Target-domain TRAIN images only (what a deployment would calibrate on), as symlinks."""
    folder = work / "calib"
    folder.mkdir(exist_ok=True)
    for domain in TARGETS:
        for img in sorted((data / domain / "leftImg8bit" / "train").rglob("*.png")):
            link = folder / img.name
            if not link.exists():
                link.symlink_to(img.resolve())
    return folder


def train_b0(data: Path, out: Path, iters: int, crop: tuple[int, int], batch: int) -> dict[str, Any]:
    """segformer_b0 trained by the product trainer: `edgeseg distill` method `oracle` on city's labels."""
    from edgeseg.models.registry import create_model
    from edgeseg.uda.api import run_distill
    from edgeseg.uda.config import load_config

    run = out.parent / "train_b0"
    init = out.parent / "segformer_b0_init.safetensors"
    torch.manual_seed(0)
    # a random start recorded with transformers' LayerNorm eps, so the checkpoint has an exact transformers twin
    save_model(create_model("segformer_b0", num_classes=19, layer_norm_eps=1e-5), init,
               provenance={"init": "random, torch seed 0"})
    cfg = load_config("synthetic", overrides=[
        "method=oracle", f"iters={iters}", "models.small=segformer_b0", f"models.small_init={init}",
        f"data.source_root={data}", f"data.target_root={data}", "data.target_domain=city", "data.val_split=val",
        f"data.crop=[{crop[0]}, {crop[1]}]", f"data.batch_size={batch}", "optim.head_lr_mult=1.0",
        "train.source_only_baseline=false", "train.progress=false"])
    log(f"training segformer_b0 (edgeseg distill, method oracle on city): {iters} iters, batch {batch}, crop {crop}")
    result = run_distill(cfg, run, log=log)
    shutil.copyfile(result.student_path, out)
    return {"path": "edgeseg distill --set method=oracle (synthetic preset overrides)", "run": str(run),
            "city_val_miou": result.report["student"]["target_miou"], "wall_time_s": result.report["wall_time_s"]}


def hf_twin(model: torch.nn.Module) -> torch.nn.Module:
    """transformers' SegformerForSemanticSegmentation holding exactly `model`'s weights."""
    import transformers

    from edgeseg.models.pretrained import _HF_RULES, map_keys

    cfg = transformers.SegformerConfig(num_labels=model.num_classes, hidden_sizes=list(model.encoder.spec.embed_dims),
                                       depths=list(model.encoder.spec.depths),
                                       decoder_hidden_size=model.head.embed_dim)
    hf = transformers.SegformerForSemanticSegmentation(cfg).eval()
    ours = model.state_dict()
    state = {}
    for key, tensor in hf.state_dict().items():
        mapped, _, unmapped = map_keys({key.removeprefix("segformer."): tensor}, _HF_RULES, False, {})
        assert not unmapped, f"no edgeseg key for {key}"
        (ours_key,) = mapped
        state[key] = ours[ours_key]
    hf.load_state_dict(state, strict=True)
    return hf


class HFLabels(torch.nn.Module):
    """The straightforward labels model: argmax of the logits bilinearly upsampled to the input size."""

    def __init__(self, hf: torch.nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.hf(pixel_values=x).logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False).argmax(1)


def export_hf(model: torch.nn.Module, out: Path, size: tuple[int, int]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(HFLabels(hf_twin(model)), (torch.zeros(1, 3, *size),), str(out), opset_version=17,
                          input_names=["input"], output_names=["labels"], dynamo=False)


# -- measurements ------------------------------------------------------------------------------------------

def val_set(data: Path, domain: str) -> list[tuple[np.ndarray, np.ndarray]]:
    from edgeseg.data.datasets import load_dataset

    ds = load_dataset("synthetic", data, "val", domain=domain)
    return [ds[i] for i in range(len(ds))]


def latency(runners: dict[str, Any], x: np.ndarray, rounds: int) -> dict[str, dict[str, float]]:
    for run in runners.values():
        run(x)  # warm-up (first run allocates)
    wall: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            run(x)
            cpu[name].append(time.thread_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return {k: {"wall_median_ms": 1000 * statistics.median(wall[k]), "wall_min_ms": 1000 * min(wall[k]),
                "cpu_median_ms": 1000 * statistics.median(cpu[k]), "cpu_min_ms": 1000 * min(cpu[k])}
            for k in runners}


def accuracy(predictors: dict[str, Any], data: Path, mean: Any, std: Any, size: tuple[int, int]) -> dict[str, Any]:
    per_domain: dict[str, dict[str, float]] = {}
    agreement: dict[str, list[int]] = {k: [0, 0] for k in predictors if k != "torch-eager"}
    for domain in TARGETS:
        matrices = {k: ConfusionMatrix(19) for k in predictors}
        for image, label in val_set(data, domain):
            x = normalize_batch([image], size, mean, std)
            preds = {k: np.asarray(p(x))[0] for k, p in predictors.items()}
            for k, pred in preds.items():
                matrices[k].update(pred, label)
                if k in agreement:
                    agreement[k][0] += int((pred == preds["torch-eager"]).sum())
                    agreement[k][1] += pred.size
        per_domain[domain] = {k: 100 * mean_iou(per_class_iou(m.matrix)) for k, m in matrices.items()}
    avg = {k: statistics.mean(per_domain[d][k] for d in TARGETS) for k in predictors}
    return {"miou_per_domain": per_domain, "miou_mean": avg,
            "agreement_with_torch": {k: a / t for k, (a, t) in agreement.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgeseg_export_bench"))
    parser.add_argument("--ckpt", type=Path, help="a segformer_b0 edgeseg checkpoint (default: train one)")
    parser.add_argument("--data", type=Path, help="synthetic data root (default: render into --work)")
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--num", type=int, default=48, help="train images per domain to render")
    parser.add_argument("--val-num", type=int, default=8, help="val images per domain to render")
    parser.add_argument("--train-iters", type=int, default=400)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    command = "python benchmarks/export.py " + shlex.join(sys.argv[1:])
    size = tuple(int(v) for v in args.size.split("x"))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    data = args.data or work / "synth"
    render_data(data, size, args.num, args.val_num)  # type: ignore[arg-type]
    training = None
    ckpt = args.ckpt or work / "segformer_b0_synth.safetensors"
    if not ckpt.exists():
        training = train_b0(data, ckpt, args.train_iters, (size[0] // 2, size[1] // 2), args.train_batch)
    model = load_model(ckpt)
    assert model.arch == "segformer_b0", "the comparison is defined for segformer_b0"
    calib = calib_folder(data, work)

    log("exporting: edgeseg fp32, edgeseg int8, straightforward transformers export")
    files = {"edgeseg-fp32": work / "edgeseg_fp32.onnx", "edgeseg-int8": work / "edgeseg_int8.onnx",
             "hf-fp32": work / "hf_fp32.onnx"}
    t0 = time.perf_counter()
    fp32 = export_onnx(ckpt, files["edgeseg-fp32"], ExportConfig(size=size, calib_dir=calib, parity_images=2))  # type: ignore[arg-type]
    export_s = {"edgeseg-fp32": time.perf_counter() - t0}
    t0 = time.perf_counter()
    int8 = export_onnx(ckpt, files["edgeseg-int8"], ExportConfig(size=size, precision="int8", calib_dir=calib,  # type: ignore[arg-type]
                                                                 calib_images=args.calib_images, parity_images=2))
    export_s["edgeseg-int8"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    export_hf(model, files["hf-fp32"], size)  # type: ignore[arg-type]
    export_s["hf-fp32"] = time.perf_counter() - t0

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {k: ort.InferenceSession(str(f), options, providers=["CPUExecutionProvider"]) for k, f in files.items()}

    def ort_runner(sess: Any) -> Any:
        return lambda x: sess.run(None, {"input": x})[0]

    def torch_labels(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(x))
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False).argmax(1).numpy()

    runners = {k: ort_runner(s) for k, s in sessions.items()}
    runners["torch-eager"] = torch_labels
    image, _ = val_set(data, "city")[0]
    x = normalize_batch([image], size, model.meta["mean"], model.meta["std"])  # type: ignore[arg-type]
    log(f"latency: {args.rounds} interleaved rounds, {args.threads} thread(s)")
    lat = latency(runners, x, args.rounds)
    log("accuracy on the target-domain val images")
    acc = accuracy(runners, data, model.meta["mean"], model.meta["std"], size)  # type: ignore[arg-type]
    speedup = {kind: lat["hf-fp32"][kind] / lat["edgeseg-fp32"][kind]
               for kind in ("wall_median_ms", "wall_min_ms", "cpu_median_ms", "cpu_min_ms")}
    result = {
        "command": command, "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(), "threads": args.threads, "size": list(size), "checkpoint": str(ckpt),
        "training": training, "onnxruntime": ort.__version__, "torch": torch.__version__,
        "export_seconds": export_s, "parity_fp32": fp32.parity, "parity_int8": int8.parity, "int8_export": int8.int8,
        "latency": lat, "speedup_edgeseg_vs_hf": speedup, "accuracy": acc,
        "int8_miou_loss": acc["miou_mean"]["edgeseg-fp32"] - acc["miou_mean"]["edgeseg-int8"],
    }
    name = f"export_{platform.node() or 'host'}_{args.threads}t"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / f"{name}.json", result)
    write_text_atomic(args.out / f"{name}.md", to_markdown(result))
    log(json.dumps({"speedup": speedup, "miou": acc["miou_mean"], "agreement": acc["agreement_with_torch"]}))


def to_markdown(r: dict[str, Any]) -> str:
    lat, acc = r["latency"], r["accuracy"]
    rows = ["| model | wall median ms | wall min ms | CPU-time median ms | CPU-time min ms | target mIoU | "
            "label agreement with PyTorch |", "|---|---|---|---|---|---|---|"]
    for k in ("edgeseg-fp32", "hf-fp32", "edgeseg-int8", "torch-eager"):
        agree = acc["agreement_with_torch"].get(k)
        rows.append(f"| {k} | {lat[k]['wall_median_ms']:.1f} | {lat[k]['wall_min_ms']:.1f} | "
                    f"{lat[k]['cpu_median_ms']:.1f} | {lat[k]['cpu_min_ms']:.1f} | {acc['miou_mean'][k]:.2f} | "
                    f"{'-' if agree is None else f'{100 * agree:.3f}%'} |")
    s = r["speedup_edgeseg_vs_hf"]
    return "\n".join([
        f"# `edgeseg export` vs the straightforward export: segformer_b0 {r['size'][0]}x{r['size'][1]}, "
        "labels output, ONNX Runtime CPU", "",
        f"Command: `{r['command']}`", "",
        f"Host {r['host']} ({r['cpu']}), {r['threads']} thread(s), load average {r['load_average']}, "
        f"onnxruntime {r['onnxruntime']}, torch {r['torch']}.", "",
        *rows, "",
        f"Speed-up of edgeseg's FP32 export over the straightforward one: {s['cpu_median_ms']:.2f}x (CPU-time "
        f"median), {s['wall_median_ms']:.2f}x (wall median), {s['wall_min_ms']:.2f}x (wall min).", "",
        *(["CPU time is the calling thread's only: with more than one thread it misses the pool threads' work, "
           "so compare wall-clock columns here. On a shared host (see the load average) extra threads compete "
           "with other processes; the single-thread file is the cleaner comparison.", ""]
          if r["threads"] > 1 else []),
        f"INT8 mIoU loss on the synthetic targets: {r['int8_miou_loss']:.2f} (mean over {', '.join(TARGETS)}).", "",
        "Per-domain mIoU:", "",
        "| domain | " + " | ".join(acc["miou_mean"]) + " |",
        "|---|" + "---|" * len(acc["miou_mean"]),
        *[f"| {d} | " + " | ".join(f"{v:.2f}" for v in acc["miou_per_domain"][d].values()) + " |" for d in TARGETS],
        "",
    ])


if __name__ == "__main__":
    main()
