"""`export/device_check.sh`: one command that checks the TensorRT path on a machine with an NVIDIA GPU.

    python -m edgeseg.deploy.trt.device_check --checkpoint student.safetensors     # a workstation with torch
    python -m edgeseg.deploy.trt.device_check --onnx-dir exported/                 # a Jetson: ONNX made elsewhere

Steps: versions (TensorRT, CUDA driver, cuda-python, numpy, cv2, ONNX Runtime); export every variant of a
B0 (labels, logits, dynamic, FP16, INT8 for TensorRT), or take them from --onnx-dir; check each against the
TensorRT operator tables (trt_support) and parse it with TensorRT's own parser, printing its errors; build
FP32 / FP16 / INT8 engines; compare each engine's labels with ONNX Runtime CPU on the same ONNX at two frame
sizes (FP32/FP16 must agree on >= 99.9% of pixels); `edgeseg bench` engine vs ONNX; a JSON and a markdown
summary into benchmarks/results/.

The steps run through a `Tools` object; `real_tools()` binds them to TensorRT / ONNX Runtime / the CLI, and
the unit tests pass fakes, so the orchestration and the report are tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError

# name -> ExportConfig keyword arguments; file names in --onnx-dir are <name>.onnx
VARIANTS: dict[str, dict[str, Any]] = {
    "labels": {},
    "logits": {"output": "logits"},
    "dynamic": {"dynamic": True},
    "fp16": {"precision": "fp16"},
    "int8_trt": {"precision": "int8", "int8_for": "tensorrt"},
}
MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.999}  # INT8 agreement is reported, not gated


LOG = logging.getLogger("edgeseg")


@dataclass(frozen=True)
class EngineCase:
    variant: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.variant}_{self.precision}"


def engine_cases(fp16_flag: bool) -> list[EngineCase]:
    """FP32, FP16 (from the FP32 graph where the builder still has an FP16 flag, and from the FP16 graph),
    INT8 from the TensorRT Q/DQ graph, and the dynamic graph in FP16 (or FP32 where FP16 needs an FP16 ONNX)."""
    cases = [EngineCase("labels", "fp32")]
    if fp16_flag:
        cases.append(EngineCase("labels", "fp16"))
    cases += [
        EngineCase("fp16", "fp16"),
        EngineCase("int8_trt", "int8"),
        EngineCase("dynamic", "fp16" if fp16_flag else "fp32"),
        EngineCase("logits", "fp32"),
    ]
    return cases


@dataclass
class Tools:
    """The side-effecting steps (real ones in `real_tools`, fakes in the tests)."""

    versions: Callable[[], dict[str, Any]]
    fp16_flag: Callable[[], bool]
    export: Callable[[str, dict[str, Any], Path], Path]
    graph_problems: Callable[[Path], dict[str, list[str]]]
    parse: Callable[[Path], list[str]]
    build: Callable[[Path, str, Path, tuple[int, int]], dict[str, Any]]
    agreement: Callable[[Path, Path, tuple[int, int]], float]
    bench: Callable[[Path, Path], dict[str, Any]]


@dataclass
class CheckConfig:
    work_dir: Path
    results_dir: Path
    checkpoint: Path | None = None
    onnx_dir: Path | None = None
    size: tuple[int, int] = (512, 1024)
    calib_dir: Path | None = None
    bench: bool = True
    tag: str = field(default_factory=lambda: platform.node() or "device")

    @property
    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        h, w = self.size
        return self.size, (h // 2, w // 2)


def run_check(cfg: CheckConfig, tools: Tools, log: Callable[[str], None] = LOG.info) -> dict[str, Any]:
    """Run every step, never stopping at the first failure; returns the report (also written to disk)."""
    report: dict[str, Any] = {
        "versions": tools.versions(),
        "size": list(cfg.size),
        "sizes": [list(s) for s in cfg.sizes],
        "onnx": {},
        "engines": {},
        "bench": {},
        "measured": True,
    }
    log("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    onnx_files: dict[str, Path] = {}
    for name, kwargs in VARIANTS.items():
        entry: dict[str, Any] = {}
        try:
            if cfg.onnx_dir is not None:
                path = cfg.onnx_dir / f"{name}.onnx"
                if not path.is_file():
                    raise EdgesegError(f"{path} is missing (export it elsewhere, see export/README.md)")
            else:
                path = tools.export(name, kwargs, cfg.work_dir / f"{name}.onnx")
            onnx_files[name] = path
            entry["file"] = str(path)
            entry["table_problems"] = tools.graph_problems(path)
            entry["parser_errors"] = tools.parse(path)
        except Exception as exc:  # one broken variant must not hide the others
            entry["error"] = _one_line(exc)
        entry["ok"] = (
            "error" not in entry
            and not entry.get("parser_errors")
            and not any(entry.get("table_problems", {}).values())
        )
        report["onnx"][name] = entry
        log(f"onnx {name}: {'ok' if entry['ok'] else 'FAILED'} {_brief(entry)}")
    for case in engine_cases(tools.fp16_flag()):
        if case.variant not in onnx_files:
            continue
        entry = {"onnx": case.variant, "precision": case.precision}
        engine = cfg.work_dir / f"{case.name}.engine"
        try:
            entry["build"] = tools.build(onnx_files[case.variant], case.precision, engine, cfg.size)
            entry["agreement"] = {
                f"{h}x{w}": tools.agreement(engine, onnx_files[case.variant], (h, w)) for h, w in cfg.sizes
            }
            bar = MIN_AGREEMENT.get(case.precision)
            entry["min_agreement"] = bar
            entry["ok"] = bar is None or min(entry["agreement"].values()) >= bar
        except Exception as exc:
            entry["error"] = _one_line(exc)
            entry["ok"] = False
        report["engines"][case.name] = entry
        log(f"engine {case.name}: {'ok' if entry['ok'] else 'FAILED'} {_brief(entry)}")
        if cfg.bench and "error" not in entry:
            try:
                report["bench"][case.name] = tools.bench(engine, onnx_files[case.variant])
            except Exception as exc:
                report["bench"][case.name] = {"error": _one_line(exc)}
    report["ok"] = all(e["ok"] for e in report["onnx"].values()) and all(
        e["ok"] for e in report["engines"].values()
    )
    write_report(report, cfg)
    return report


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def _brief(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return entry["error"]
    if entry.get("parser_errors"):
        return "; ".join(entry["parser_errors"])[:300]
    problems = [p for ps in entry.get("table_problems", {}).values() for p in ps]
    if problems:
        return "; ".join(problems)[:300]
    if "agreement" in entry:
        return ", ".join(f"{k}: {100 * v:.3f}%" for k, v in entry["agreement"].items())
    return ""


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-").lower() or "device"


def write_report(report: dict[str, Any], cfg: CheckConfig) -> tuple[Path, Path]:
    from edgeseg.io_utils import write_json_atomic, write_text_atomic

    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"device_check_{slug(cfg.tag)}_trt{slug(str(report['versions'].get('tensorrt', 'none')))}"
    json_path, md_path = cfg.results_dir / f"{stem}.json", cfg.results_dir / f"{stem}.md"
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, markdown(report))
    return json_path, md_path


def markdown(report: dict[str, Any]) -> str:
    v = report["versions"]
    lines = [
        "# TensorRT device check",
        "",
        "Written by `export/device_check.sh` (edgeseg/deploy/trt/device_check.py).",
        "",
        "| component | version |",
        "|---|---|",
        *[f"| {k} | {val} |" for k, val in v.items()],
        "",
        "## ONNX variants",
        "",
        "| variant | result | TensorRT table problems | parser errors |",
        "|---|---|---|---|",
    ]
    for name, e in report["onnx"].items():
        problems = sum(len(p) for p in e.get("table_problems", {}).values())
        lines.append(
            f"| {name} | {'ok' if e['ok'] else 'FAILED'} | {problems} | "
            f"{e.get('error') or '; '.join(e.get('parser_errors', [])) or '-'} |"
        )
    lines += [
        "",
        "## Engines vs ONNX Runtime CPU (label agreement)",
        "",
        "| engine | result | " + " | ".join(f"{h}x{w}" for h, w in report["sizes"]) + " | bar |",
        "|---|---|" + "---|" * (len(report["sizes"]) + 1),
    ]
    for name, e in report["engines"].items():
        cells = [
            f"{100 * e['agreement'][f'{h}x{w}']:.3f}%" if "agreement" in e else "-"
            for h, w in report["sizes"]
        ]
        bar = f"{100 * e['min_agreement']:.1f}%" if e.get("min_agreement") else "reported"
        lines.append(
            f"| {name} | {'ok' if e['ok'] else 'FAILED: ' + e.get('error', 'below the bar')} | "
            f"{' | '.join(cells)} | {bar} |"
        )
    if report["bench"]:
        lines += [
            "",
            "## `edgeseg bench`: engine vs ONNX (median latency, ms)",
            "",
            "| engine | engine ms | ONNX ms | ONNX backend |",
            "|---|---|---|---|",
        ]
        for name, b in report["bench"].items():
            lines.append(
                f"| {name} | {b.get('engine_ms', '-')} | {b.get('onnx_ms', '-')} | {b.get('onnx_backend', '-')} |"
                if "error" not in b
                else f"| {name} | {b['error']} | | |"
            )
    lines += ["", f"Overall: **{'ok' if report['ok'] else 'FAILED'}**", ""]
    return "\n".join(lines)


# -- the real steps -----------------------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    from importlib import metadata

    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    for module in ("tensorrt", "numpy", "cv2", "onnxruntime", "onnx"):
        try:
            out[module] = __import__(module).__version__
        except Exception:  # absent or broken: say so in the report
            out[module] = None
    for dist in ("cuda-python", "cuda-bindings"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        from edgeseg.deploy.trt.cuda_helpers import cuda_call, import_cudart

        driver = int(cuda_call(import_cudart().cudaDriverGetVersion()))
        out["cuda_driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
    except Exception:
        out["cuda_driver"] = None
    return out


def parse_with_tensorrt(trt: Any, path: Path) -> list[str]:
    """TensorRT's own ONNX parser on `path`: its error messages (empty: parsed)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if (
        hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
        and int(trt.__version__.split(".")[0]) < 10
    ):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(path)):
        return []
    return [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["parse failed (no message)"]


def real_tools(cfg: CheckConfig) -> Tools:
    import onnx
    import tensorrt as trt

    from edgeseg.deploy.trt.plan import TensorRTFeatures
    from edgeseg.deploy.trt.support import RELEASES, graph_problems

    def export(name: str, kwargs: dict[str, Any], out: Path) -> Path:
        from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx

        if cfg.checkpoint is None:
            raise EdgesegError("give --checkpoint (a trained .safetensors) or --onnx-dir")
        export_onnx(cfg.checkpoint, out, ExportConfig(size=cfg.size, calib_dir=cfg.calib_dir, **kwargs))
        return out

    def build(onnx_path: Path, precision: str, out: Path, size: tuple[int, int]) -> dict[str, Any]:
        from edgeseg.deploy.trt.build import EngineConfig, build_engine

        small = (size[0] // 2, size[1] // 2)
        dynamic = "dynamic" in onnx_path.stem
        engine_cfg = EngineConfig(
            precision=precision,
            calib_dir=cfg.calib_dir,
            timing_cache=cfg.work_dir / "timing.cache",
            size=size if dynamic else None,
            min_size=small if dynamic else None,
            max_size=size if dynamic else None,
        )
        return build_engine(onnx_path, out, engine_cfg).to_json()

    def agreement(engine: Path, onnx_path: Path, size: tuple[int, int]) -> float:
        from edgeseg.deploy.runtime.backends import open_segmenter
        from edgeseg.deploy.runtime.calibration import load_frames

        frames = load_frames(cfg.calib_dir, 4, size, seed=5)
        with open_segmenter(onnx_path, backend="onnxruntime-cpu") as onnx_seg:
            ref = onnx_seg.predict(frames)
        with open_segmenter(engine) as seg:
            got = seg.predict(frames)
        same = sum(int((a == b).sum()) for a, b in zip(got, ref, strict=True))
        return same / sum(a.size for a in ref)

    def bench(engine: Path, onnx_path: Path) -> dict[str, Any]:
        out = cfg.work_dir / f"bench_{engine.stem}.json"
        cmd = [
            sys.executable,
            "-m",
            "edgeseg",
            "bench",
            str(engine),
            str(onnx_path),
            "--iters",
            "50",
            "--no-progress",
            "--json",
            str(out),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise EdgesegError(
                done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "edgeseg bench failed"
            )
        return summarize_bench(json.loads(out.read_text()))

    return Tools(
        versions=versions,
        fp16_flag=lambda: TensorRTFeatures.of(trt).fp16_flag,
        export=export,
        graph_problems=lambda p: {r: graph_problems(onnx.load(str(p)), r) for r in RELEASES},
        parse=lambda p: parse_with_tensorrt(trt, p),
        build=build,
        agreement=agreement,
        bench=bench,
    )


def summarize_bench(results: dict[str, Any]) -> dict[str, Any]:
    """Median latencies of the engine and the ONNX file from `edgeseg bench --json` (schema: docs/bench.md)."""
    out: dict[str, Any] = {}
    for case in results.get("results", []):
        median = case.get("latency_ms", {}).get("median")
        if case.get("backend") == "tensorrt":
            out["engine_ms"] = median
        else:
            out["onnx_ms"], out["onnx_backend"] = median, case.get("backend")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export/device_check.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="trained .safetensors to export (needs torch)")
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        help="folder with labels/logits/dynamic/fp16/int8_trt .onnx exported elsewhere (Jetson)",
    )
    parser.add_argument(
        "--calib",
        type=Path,
        help="target-domain images: INT8 calibration (the int8_trt export needs "
        "them) and comparison frames (synthetic frames without)",
    )
    parser.add_argument(
        "--size", default="512x1024", help="export / engine HxW (the second size is half of it)"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("device_check_work"))
    parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--no-bench", action="store_true")
    args = parser.parse_args(argv)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
        if (args.checkpoint is None) == (args.onnx_dir is None):
            raise EdgesegError(
                "give exactly one of --checkpoint (export here) or --onnx-dir (exported elsewhere)"
            )
        cfg = CheckConfig(
            work_dir=args.work_dir,
            results_dir=args.results_dir,
            checkpoint=args.checkpoint,
            onnx_dir=args.onnx_dir,
            size=(h, w),
            calib_dir=args.calib,
            bench=not args.no_bench,
        )
        try:
            tools = real_tools(cfg)
        except ImportError as exc:
            raise EdgesegError(
                f"{exc.name or 'tensorrt'} is not importable here: run this on a machine with an "
                "NVIDIA GPU and TensorRT"
            ) from None
        report = run_check(cfg, tools, log=print)
    except (EdgesegError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
