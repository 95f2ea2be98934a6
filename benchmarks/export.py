"""CPU latency and accuracy of `edgeseg export` (ONNX Runtime and OpenVINO) versus the peers.

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
* OpenVINO (CPU plugin, LATENCY hint, `--threads` inference threads):
  `hf/ov-f32`, `hf/ov-default`: the straightforward export in OpenVINO at f32 and at OpenVINO's default
  precision (bf16 on CPUs that have it: what a user who just loads the file gets);
  `edgeseg-fp32/ov-f32`, `edgeseg-fp32/ov-default`: the ONNX Runtime-shaped edgeseg export in OpenVINO;
  `edgeseg-ov-fp32`, `edgeseg-ov-bf16`, `edgeseg-ov-int8`: `edgeseg export --for openvino` IR (fp32, --bf16,
  --int8 NNCF), run through edgeseg's `openvino` backend at the precision each file records.

Latency = one `session.run` / `infer` / forward on one preprocessed frame (no pre/post-processing, every
graph outputs labels), all rows interleaved round-robin in one process. Reported: wall-clock median and
min, and the process CPU time per call (all threads: OpenVINO runs inference on its own worker thread; with
`--threads 1` this is the work done, immune to time-slicing by other processes on a shared host).
Accuracy on the synthetic benchmark's target-domain val images (`edgeseg data synth`): mIoU against the
ground truth per domain, and label agreement with PyTorch.

The model: `--ckpt`, or (default) segformer_b0 trained from scratch for `--train-iters` on the labelled
synthetic domains, with LayerNorm eps 1e-5 so the transformers model computes exactly the same function.
Roofline: the f32 (and bf16) GEMM peak measured here with torch.mm at `--threads`, against the model's
counted MACs (Conv/MatMul/Gemm; `edgeseg.bench.onnx_flops`).
Results: benchmarks/results/export_<host>_<threads>t[_<size>].json and .md (with the exact command).
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
    save_model(
        create_model("segformer_b0", num_classes=19, layer_norm_eps=1e-5),
        init,
        provenance={"init": "random, torch seed 0"},
    )
    rendered = json.loads((data / "synthetic.json").read_text())["size"]  # the preset checks crop <= this
    cfg = load_config(
        "synthetic",
        overrides=[
            "method=oracle",
            f"synthetic.size=[{rendered[0]}, {rendered[1]}]",
            f"iters={iters}",
            "models.small=segformer_b0",
            f"models.small_init={init}",
            f"data.source_root={data}",
            f"data.target_root={data}",
            "data.target_domain=city",
            "data.val_split=val",
            f"data.crop=[{crop[0]}, {crop[1]}]",
            f"data.batch_size={batch}",
            "optim.head_lr_mult=1.0",
            "train.source_only_baseline=false",
            "train.progress=false",
        ],
    )
    log(
        f"training segformer_b0 (edgeseg distill, method oracle on city): {iters} iters, batch {batch}, crop {crop}"
    )
    result = run_distill(cfg, run, log=log)
    shutil.copyfile(result.student_path, out)
    return {
        "path": "edgeseg distill --set method=oracle (synthetic preset overrides)",
        "run": str(run),
        "city_val_miou": result.report["student"]["target_miou"],
        "wall_time_s": result.report["wall_time_s"],
    }


def hf_twin(model: torch.nn.Module) -> torch.nn.Module:
    """transformers' SegformerForSemanticSegmentation holding exactly `model`'s weights."""
    import transformers

    from edgeseg.models.pretrained import _HF_RULES, map_keys

    cfg = transformers.SegformerConfig(
        num_labels=model.num_classes,
        hidden_sizes=list(model.encoder.spec.embed_dims),
        depths=list(model.encoder.spec.depths),
        decoder_hidden_size=model.head.embed_dim,
    )
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
        torch.onnx.export(
            HFLabels(hf_twin(model)),
            (torch.zeros(1, 3, *size),),
            str(out),
            opset_version=17,
            input_names=["input"],
            output_names=["labels"],
            dynamo=False,
        )


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
            t0, c0 = time.perf_counter(), time.process_time()
            run(x)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return {
        k: {
            "wall_median_ms": 1000 * statistics.median(wall[k]),
            "wall_min_ms": 1000 * min(wall[k]),
            "cpu_median_ms": 1000 * statistics.median(cpu[k]),
            "cpu_min_ms": 1000 * min(cpu[k]),
        }
        for k in runners
    }


def accuracy(
    predictors: dict[str, Any], data: Path, mean: Any, std: Any, size: tuple[int, int], limit: int = 0
) -> dict[str, Any]:
    import cv2

    per_domain: dict[str, dict[str, float]] = {}
    agreement: dict[str, list[int]] = {k: [0, 0] for k in predictors if k != "torch-eager"}
    for domain in TARGETS:
        matrices = {k: ConfusionMatrix(19) for k in predictors}
        for image, label in val_set(data, domain)[: limit or None]:
            x = normalize_batch([image], size, mean, std)
            preds = {k: np.asarray(p(x))[0] for k, p in predictors.items()}
            for k, pred in preds.items():
                scored = (
                    pred
                    if pred.shape == label.shape
                    else cv2.resize(  # --size other than the data's
                        pred.astype(np.uint8), label.shape[::-1], interpolation=cv2.INTER_NEAREST
                    )
                )
                matrices[k].update(scored, label)
                if k in agreement:
                    agreement[k][0] += int((pred == preds["torch-eager"]).sum())
                    agreement[k][1] += pred.size
        per_domain[domain] = {k: 100 * mean_iou(per_class_iou(m.matrix)) for k, m in matrices.items()}
    avg = {k: statistics.mean(per_domain[d][k] for d in TARGETS) for k in predictors}
    return {
        "miou_per_domain": per_domain,
        "miou_mean": avg,
        "agreement_with_torch": {k: a / t for k, (a, t) in agreement.items()},
    }


# -- OpenVINO and the roofline ----------------------------------------------------------------------------


def ov_peer_runner(path: Path, precision: str | None, threads: int) -> Any:
    """A peer graph in OpenVINO as a user would load it: `precision` None = OpenVINO's default."""
    import openvino as ov

    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: np.array(request.infer({0: x})[compiled.output(0)])


def gemm_peak_gflops(threads: int, dtype: torch.dtype, n: int = 1024, repeats: int = 10) -> float:
    """Best-of GEMM throughput (torch.mm, n x n x n) at `threads`: the compute roof of this CPU."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ov_profile(path: Path, x: np.ndarray, threads: int, top: int = 12) -> list[dict[str, Any]]:
    """Where the time goes in OpenVINO: per-layer-type CPU time from the plugin's perf counters."""
    import openvino as ov

    from edgeseg.deploy.runtime import openvino_backend

    core = ov.Core()
    model = core.read_model(str(path))
    precision = openvino_backend.read_meta(model, str(path)).get("precision", "fp32")
    config = openvino_backend.compile_config(precision, threads, openvino_backend.cpu_has_bf16(core))
    compiled = core.compile_model(model, "CPU", {**config, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    totals: dict[str, float] = {}
    for _ in range(3):
        request.infer({0: x})
        for info in request.profiling_info:
            key = f"{info.node_type} ({info.exec_type})"
            totals[key] = totals.get(key, 0.0) + info.real_time.total_seconds() * 1000 / 3
    whole = sum(totals.values())
    return [
        {"layer": k, "ms": round(v, 1), "share": round(v / whole, 3)}
        for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    ]


ROWS = (
    "edgeseg-fp32/ort",
    "edgeseg-int8/ort",
    "hf-fp32/ort",
    "hf/ov-f32",
    "hf/ov-default",
    "edgeseg-fp32/ov-f32",
    "edgeseg-fp32/ov-default",
    "edgeseg-ov-fp32",
    "edgeseg-ov-bf16",
    "edgeseg-ov-int8",
    "torch-eager",
)
OURS = ("edgeseg-fp32/ort", "edgeseg-int8/ort", "edgeseg-ov-fp32", "edgeseg-ov-bf16", "edgeseg-ov-int8")
PEERS = ("hf-fp32/ort", "hf/ov-f32", "hf/ov-default")
FP32 = ("edgeseg-fp32/ort", "edgeseg-ov-fp32")
AGREEMENT_GOAL = 0.999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgeseg_export_bench"))
    parser.add_argument("--ckpt", type=Path, help="a segformer_b0 edgeseg checkpoint (default: train one)")
    parser.add_argument("--data", type=Path, help="synthetic data root (default: render into --work)")
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--num", type=int, default=48, help="train images per domain to render")
    parser.add_argument("--val-num", type=int, default=8, help="val images per domain to render")
    parser.add_argument("--train-iters", type=int, default=1000)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--min-agreement", type=float, help="export parity bar (default: edgeseg's per precision)"
    )
    parser.add_argument(
        "--skip-int8",
        action="store_true",
        help="no INT8 rows (ONNX Runtime's calibrator holds every intermediate tensor: >20 GB at 1024x2048)",
    )
    parser.add_argument(
        "--val-limit", type=int, default=0, help="val images per domain for accuracy (0 = all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    command = "python benchmarks/export.py " + shlex.join(sys.argv[1:])
    size = tuple(int(v) for v in args.size.split("x"))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    data = args.data or work / "synth"
    render_data(data, (512, 1024), args.num, args.val_num)
    training = None
    ckpt = args.ckpt or work / "segformer_b0_synth.safetensors"
    if not ckpt.exists():
        training = train_b0(data, ckpt, args.train_iters, (256, 512), args.train_batch)
    elif args.ckpt is None and (work / "train_b0" / "report.json").exists():  # trained by an earlier run here
        report = json.loads((work / "train_b0" / "report.json").read_text())
        training = {
            "path": "edgeseg distill --set method=oracle (synthetic preset overrides)",
            "run": str(work / "train_b0"),
            "iters": report.get("iters"),
            "city_val_miou": report["student"]["target_miou"],
            "wall_time_s": report.get("wall_time_s"),
        }
    model = load_model(ckpt)
    assert model.arch == "segformer_b0", "the comparison is defined for segformer_b0"
    calib = calib_folder(data, work)
    tag = f"{size[0]}x{size[1]}"

    log(
        "exporting: edgeseg fp32 / int8 (ONNX Runtime), --for openvino fp32 / bf16 / int8, transformers export"
    )
    files = {
        "edgeseg-fp32": work / f"edgeseg_fp32_{tag}.onnx",
        "edgeseg-int8": work / f"edgeseg_int8_{tag}.onnx",
        "edgeseg-ov-fp32": work / f"edgeseg_ov_fp32_{tag}.xml",
        "edgeseg-ov-bf16": work / f"edgeseg_ov_bf16_{tag}.xml",
        "edgeseg-ov-int8": work / f"edgeseg_ov_int8_{tag}.xml",
        "hf-fp32": work / f"hf_fp32_{tag}.onnx",
    }
    configs = {
        "edgeseg-fp32": {},
        "edgeseg-int8": {"precision": "int8", "calib_images": args.calib_images},
        "edgeseg-ov-fp32": {"shaped_for": "openvino"},
        "edgeseg-ov-bf16": {"shaped_for": "openvino", "precision": "bf16"},
        "edgeseg-ov-int8": {"shaped_for": "openvino", "precision": "int8", "calib_images": args.calib_images},
    }
    if args.skip_int8:
        configs = {k: v for k, v in configs.items() if "int8" not in k}
    reports, export_s = {}, {}
    for name, extra in configs.items():
        t0 = time.perf_counter()
        reports[name] = export_onnx(
            ckpt,
            files[name],
            ExportConfig(
                size=size,
                calib_dir=calib,
                parity_images=2,  # type: ignore[arg-type]
                min_agreement=args.min_agreement,
                **extra,
            ),
            log=log,
        ).to_json()
        export_s[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    export_hf(model, files["hf-fp32"], size)  # type: ignore[arg-type]
    export_s["hf-fp32"] = time.perf_counter() - t0

    import onnxruntime as ort
    import openvino as ov

    from edgeseg.bench.onnx_flops import count_onnx_macs
    from edgeseg.deploy.runtime.openvino_backend import OpenVINOSegmenter

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads

    def ort_runner(path: Path) -> Any:
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: sess.run(None, {"input": x})[0]

    def ov_backend(path: Path) -> Any:
        seg = OpenVINOSegmenter(path, threads=args.threads)
        return seg.infer

    def torch_labels(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(x))
            return (
                F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
                .argmax(1)
                .numpy()
            )

    factories = {
        "edgeseg-fp32/ort": lambda: ort_runner(files["edgeseg-fp32"]),
        "edgeseg-int8/ort": lambda: ort_runner(files["edgeseg-int8"]),
        "hf-fp32/ort": lambda: ort_runner(files["hf-fp32"]),
        "hf/ov-f32": lambda: ov_peer_runner(files["hf-fp32"], "f32", args.threads),
        "hf/ov-default": lambda: ov_peer_runner(files["hf-fp32"], None, args.threads),
        "edgeseg-fp32/ov-f32": lambda: ov_peer_runner(files["edgeseg-fp32"], "f32", args.threads),
        "edgeseg-fp32/ov-default": lambda: ov_peer_runner(files["edgeseg-fp32"], None, args.threads),
        "edgeseg-ov-fp32": lambda: ov_backend(files["edgeseg-ov-fp32"]),
        "edgeseg-ov-bf16": lambda: ov_backend(files["edgeseg-ov-bf16"]),
        "edgeseg-ov-int8": lambda: ov_backend(files["edgeseg-ov-int8"]),
        "torch-eager": lambda: torch_labels,
    }
    # --skip-int8: the INT8 rows are not exported, so they are not run either
    runners = {name: make() for name, make in factories.items() if not (args.skip_int8 and "int8" in name)}
    image, _ = val_set(data, "city")[0]
    x = normalize_batch([image], size, model.meta["mean"], model.meta["std"])  # type: ignore[arg-type]
    load_before = os.getloadavg()
    log(
        f"latency: {args.rounds} interleaved rounds of {len(runners)} rows, {args.threads} thread(s), load {load_before}"  # noqa: E501
    )
    lat = latency(runners, x, args.rounds)
    load_after = os.getloadavg()
    log("accuracy on the target-domain val images")
    acc = accuracy(runners, data, model.meta["mean"], model.meta["std"], size, args.val_limit)  # type: ignore[arg-type]
    log("roofline and OpenVINO profile")
    macs = count_onnx_macs(files["edgeseg-fp32"]).macs  # the cheapest order of the same function
    peaks = {
        "f32": gemm_peak_gflops(args.threads, torch.float32),
        "bf16": gemm_peak_gflops(args.threads, torch.bfloat16),
    }
    profile = {
        k: ov_profile(files[k], x, args.threads)
        for k in ("edgeseg-ov-fp32", "edgeseg-ov-bf16", "edgeseg-ov-int8")
        if k in configs
    }
    result = {
        "command": command,
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "size": list(size),
        "checkpoint": str(ckpt),
        "training": training,
        "onnxruntime": ort.__version__,
        "openvino": ov.__version__,
        "torch": torch.__version__,
        "export_seconds": export_s,
        "exports": reports,
        "latency": lat,
        "accuracy": acc,
        "gmacs": macs / 1e9,
        "gemm_peak_gflops": peaks,
        "openvino_profile": profile,
    }
    result["goals"] = goals(result)
    name = f"export_{platform.node() or 'host'}_{args.threads}t" + ("" if size == (512, 1024) else f"_{tag}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / f"{name}.json", result)
    write_text_atomic(args.out / f"{name}.md", to_markdown(result))
    log(json.dumps(result["goals"], indent=1))


def roofline_ms(r: dict[str, Any], dtype: str) -> float:
    """The compute roof: the model's FLOPs at the measured GEMM peak, in ms."""
    return 2 * r["gmacs"] / r["gemm_peak_gflops"][dtype] * 1000


def goals(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's goal ratios, on CPU-time and wall medians of this one interleaved run."""
    lat, acc = r["latency"], r["accuracy"]
    ours = [k for k in OURS if k in lat]
    int8 = "edgeseg-int8/ort" in lat
    out: dict[str, Any] = {}
    for kind in ("cpu_median_ms", "wall_median_ms"):
        best_ours = min(ours, key=lambda k: lat[k][kind])
        best_peer = min(PEERS, key=lambda k: lat[k][kind])
        best_fp32 = min(FP32, key=lambda k: lat[k][kind])
        out[kind] = {
            "best_ours": best_ours,
            "best_peer": best_peer,
            "ours_over_peer": lat[best_ours][kind] / lat[best_peer][kind],
            "best_fp32": best_fp32,
            "int8_over_fp32": {
                "ort": lat["edgeseg-int8/ort"][kind] / lat["edgeseg-fp32/ort"][kind],
                "openvino": lat["edgeseg-ov-int8"][kind] / lat["edgeseg-ov-fp32"][kind],
                "best_int8_over_best_fp32": min(lat["edgeseg-int8/ort"][kind], lat["edgeseg-ov-int8"][kind])
                / lat[best_fp32][kind],
            }
            if int8
            else None,
            "fp32_over_roofline": lat[best_fp32][kind] / roofline_ms(r, "f32"),
            "bf16_over_bf16_roofline": lat["edgeseg-ov-bf16"][kind] / roofline_ms(r, "bf16"),
        }
        out[kind]["agreement_of_best_ours"] = acc["agreement_with_torch"][best_ours]
        exact = [k for k in ours if acc["agreement_with_torch"][k] >= AGREEMENT_GOAL]  # both goals at once
        best_exact = min(exact, key=lambda k: lat[k][kind]) if exact else None
        out[kind]["best_ours_at_agreement_goal"] = best_exact
        out[kind]["ours_at_agreement_goal_over_peer"] = (
            lat[best_exact][kind] / lat[best_peer][kind] if best_exact else None
        )
    out["miou_change_int8"] = (
        {
            "ort": acc["miou_mean"]["edgeseg-int8/ort"] - acc["miou_mean"]["edgeseg-fp32/ort"],
            "openvino": acc["miou_mean"]["edgeseg-ov-int8"] - acc["miou_mean"]["edgeseg-ov-fp32"],
        }
        if int8
        else None
    )
    out["miou_change_bf16"] = acc["miou_mean"]["edgeseg-ov-bf16"] - acc["miou_mean"]["edgeseg-ov-fp32"]
    return out


def _ratio(g: dict[str, Any]) -> str:
    if g["best_ours_at_agreement_goal"] is None:
        return "none reaches 99.9%"
    return (
        f"{g['ours_at_agreement_goal_over_peer']:.2f} ({g['best_ours_at_agreement_goal']} / {g['best_peer']})"
    )


def to_markdown(r: dict[str, Any]) -> str:
    lat, acc, g = r["latency"], r["accuracy"], r["goals"]
    rows = [
        "| graph / runtime | wall median ms | wall min ms | CPU-time median ms | CPU-time min ms | target mIoU | "
        "label agreement with PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in (k for k in ROWS if k in lat):
        agree = acc["agreement_with_torch"].get(k)
        rows.append(
            f"| {k} | {lat[k]['wall_median_ms']:.1f} | {lat[k]['wall_min_ms']:.1f} | "
            f"{lat[k]['cpu_median_ms']:.1f} | {lat[k]['cpu_min_ms']:.1f} | {acc['miou_mean'][k]:.2f} | "
            f"{'-' if agree is None else f'{100 * agree:.3f}%'} |"
        )
    c, w = g["cpu_median_ms"], g["wall_median_ms"]
    goal_rows = [
        "| measure | goal | CPU-time medians | wall medians |",
        "|---|---|---|---|",
        f"| edgeseg best CPU path / best peer configuration | <= 0.8 | {c['ours_over_peer']:.2f} ({c['best_ours']} / "
        f"{c['best_peer']}) | {w['ours_over_peer']:.2f} ({w['best_ours']} / {w['best_peer']}) |",
        f"| its label agreement with PyTorch FP32 (trained model) | >= 99.9% | {100 * c['agreement_of_best_ours']:.3f}% | "  # noqa: E501
        f"{100 * w['agreement_of_best_ours']:.3f}% |",
        f"| fastest edgeseg path with >= 99.9% agreement / best peer | <= 0.8 | {_ratio(c)} | {_ratio(w)} |",
        *(
            [
                f"| INT8 latency / FP32, ONNX Runtime | <= 0.7 | {c['int8_over_fp32']['ort']:.2f} | "
                f"{w['int8_over_fp32']['ort']:.2f} |",
                f"| INT8 latency / FP32, OpenVINO | <= 0.7 | {c['int8_over_fp32']['openvino']:.2f} | "
                f"{w['int8_over_fp32']['openvino']:.2f} |",
                f"| best INT8 / best FP32 ({c['best_fp32']}) | <= 0.7 | "
                f"{c['int8_over_fp32']['best_int8_over_best_fp32']:.2f} | {w['int8_over_fp32']['best_int8_over_best_fp32']:.2f} |",  # noqa: E501
                f"| INT8 mIoU change (ORT / OpenVINO) | within 1 | {g['miou_change_int8']['ort']:+.2f} / "
                f"{g['miou_change_int8']['openvino']:+.2f} | |",
            ]
            if c["int8_over_fp32"]
            else ["| INT8 | - | not measured (--skip-int8) | |"]
        ),
        f"| bf16 mIoU change (OpenVINO) | - | {g['miou_change_bf16']:+.2f} | |",
        f"| best FP32 / f32 roofline ({2 * r['gmacs']:.1f} GFLOP at {r['gemm_peak_gflops']['f32']:.0f} GFLOP/s = "
        f"{roofline_ms(r, 'f32'):.0f} ms) | <= 2 | "
        f"{c['fp32_over_roofline']:.2f} | {w['fp32_over_roofline']:.2f} |",
        f"| edgeseg-ov-bf16 / bf16 roofline ({r['gemm_peak_gflops']['bf16']:.0f} GFLOP/s = {roofline_ms(r, 'bf16'):.0f} ms) "  # noqa: E501
        f"| - | {c['bf16_over_bf16_roofline']:.2f} | "
        f"{w['bf16_over_bf16_roofline']:.2f} |",
    ]
    prof = []
    for k, layers in r["openvino_profile"].items():
        prof += [
            f"**{k}**: "
            + ", ".join(f"{e['layer']} {e['ms']:.0f} ms ({100 * e['share']:.0f}%)" for e in layers),
            "",
        ]
    return "\n".join(
        [
            f"# CPU deployment: edgeseg vs peers, segformer_b0 {r['size'][0]}x{r['size'][1]}, labels output",
            "",
            f"Command: `{r['command']}`",
            "",
            f"Host {r['host']} ({r['cpu']}, {r['cpu_count']} cores), {r['threads']} thread(s); load average before "
            f"{[round(v, 2) for v in r['load_average_before']]}, after {[round(v, 2) for v in r['load_average_after']]} "  # noqa: E501
            f"(a shared machine: compare ratios within this run; CPU time is the process's, all threads); "
            f"onnxruntime {r['onnxruntime']}, openvino {r['openvino']}, torch {r['torch']}.",
            "",
            *rows,
            "",
            "## Goals (issue 14)",
            "",
            *goal_rows,
            "",
            *(
                [
                    "With more than one thread CPU time sums the threads' work: compare the wall-clock columns.",
                    "",
                ]
                if r["threads"] > 1
                else []
            ),
            "## Where the time goes (OpenVINO perf counters, per layer type, mean of 3 runs)",
            "",
            *prof,
            "Per-domain mIoU:",
            "",
            "| domain | " + " | ".join(acc["miou_mean"]) + " |",
            "|---|" + "---|" * len(acc["miou_mean"]),
            *[
                f"| {d} | " + " | ".join(f"{v:.2f}" for v in acc["miou_per_domain"][d].values()) + " |"
                for d in TARGETS
            ],
            "",
        ]
    )


if __name__ == "__main__":
    main()
