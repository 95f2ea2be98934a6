"""`edgeseg merge-export`: domain students -> one merged model -> deployable, checked artefacts + a report.

    DIR/merged.safetensors          the merged checkpoint (edgeseg.merge.api.merge_checkpoints)
    DIR/merged.onnx                 FP32 ONNX, parity-checked against the merged PyTorch model
    DIR/merged_int8.onnx            with --int8: INT8 QDQ for ONNX Runtime CPU, calibrated on --calib
    DIR/merged.engine (+ .json)     with --engine, when TensorRT is present: FP16 engine for this GPU
    DIR/report.json, DIR/report.md  what was done, parity, and (with --eval-data) per-domain mIoU and the
                                    harmonic mean of every input, the merged model and its exports

A `backbone` merge yields a multi-head checkpoint (one head per domain): it is split into one segmentor
per domain and each is exported (`merged_<domain>.onnx`); each domain is evaluated with its own head.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import ConfigError

if TYPE_CHECKING:
    from edgeseg.merge.api import MergeOptions


@dataclass(frozen=True)
class MergeExportConfig:
    method: str = "bn"  # a name in edgeseg.merge.methods.REGISTRY
    weights: Sequence[float] | None = None
    base: Path | None = None  # for methods that merge task vectors (needs_base)
    params: Mapping[str, Any] = field(
        default_factory=dict
    )  # the method's parameters (names -> values or text)
    size: tuple[int, int] = (512, 1024)
    eval_data: Path | None = None
    domains: Sequence[str] = ()
    dataset: str = "synthetic"
    eval_limit: int | None = None
    int8: bool = False
    calib_dir: Path | None = None
    engine: bool = False
    parity_images: int = 4
    slim: bool = True

    def __post_init__(self) -> None:
        if self.int8 and self.calib_dir is None:
            raise ConfigError("--int8 needs --calib DIR (target-domain images)")
        if self.eval_data is not None and not self.domains:
            raise ConfigError("--eval-data needs --domains, e.g. --domains city,night,fog")
        if self.domains and self.eval_data is None:
            raise ConfigError("--domains needs --eval-data ROOT (labelled val images of those domains)")

    def merge_options(self) -> MergeOptions:
        from edgeseg.merge.api import MergeOptions

        return MergeOptions(method=self.method, weights=self.weights, base=self.base, params=self.params)


def _segmenter_scores(
    paths: Sequence[Path], datasets: dict[str, Any], domain_of: dict[Path, str] | None, name: str
) -> dict[str, Any]:
    """mIoU per domain (and H-mean) of exported models run through the runtime interface."""
    from edgeseg.deploy.runtime.backends import open_segmenter
    from edgeseg.evaluate import evaluate_dataset, harmonic_mean

    miou = {}
    with contextlib.ExitStack() as opened:  # every session closed, also when a domain has no head
        segs = {p: opened.enter_context(open_segmenter(p, backend="onnxruntime-cpu")) for p in paths}
        for domain, ds in datasets.items():
            path = next((p for p in paths if domain_of is None or domain_of[p] == domain), None)
            if path is None:
                raise ConfigError(f"no exported head for domain '{domain}'")
            seg = segs[path]
            miou[domain] = evaluate_dataset(lambda bgr, seg=seg: seg.predict([bgr])[0], ds).miou
    return {"name": name, "miou": miou, "harmonic_mean": harmonic_mean(miou.values())}


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def merge_and_export(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: MergeExportConfig,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    from edgeseg.checkpoint import read_checkpoint_meta
    from edgeseg.io_utils import write_json_atomic, write_text_atomic
    from edgeseg.merge.api import resolve_method

    start = time.perf_counter()
    resolve_method(cfg.merge_options())  # an unknown method or parameter fails before any work
    for path in inputs:  # cheap header reads: a bad input fails before the output folder exists
        read_checkpoint_meta(path)
    from edgeseg.io_utils import staged_dir

    final_dir = Path(out_dir)
    # everything is built in a staging folder and moved in at the end: a failed run leaves no folder, and a
    # failed re-run never leaves a new checkpoint beside the old run's ONNX files and report
    with staged_dir(final_dir) as stage:
        report = _merge_and_export_into(stage, inputs, cfg, log, start)
        report = _rebase(report, str(stage), str(final_dir))
        write_json_atomic(stage / "report.json", report)
        write_text_atomic(stage / "report.md", to_markdown(report))
    return report


def _rebase(obj: Any, old: str, new: str) -> Any:
    """The report as it reads after the staging folder moved: every path under `old` now under `new`."""
    if isinstance(obj, str):
        return new + obj[len(old) :] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {k: _rebase(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rebase(v, old, new) for v in obj]
    return obj


def _merge_and_export_into(
    out_dir: Path,
    inputs: Sequence[str | Path],
    cfg: MergeExportConfig,
    log: Callable[[str], None],
    start: float,
) -> dict[str, Any]:
    from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx
    from edgeseg.merge.api import merge_checkpoints

    merged = out_dir / "merged.safetensors"
    log(f"merging {len(inputs)} checkpoints ({cfg.method})")
    merge = merge_checkpoints(inputs, merged, cfg.merge_options())
    report: dict[str, Any] = {
        "inputs": [str(p) for p in inputs],
        "method": cfg.method,
        "merge": merge.to_json(),
        "artifacts": {"checkpoint": str(merged)},
        "exports": {},
        "notes": [],
    }
    if merge.heads:  # backbone merge: one segmentor (and one ONNX file) per domain head
        from edgeseg.merge.multihead import split_multihead

        singles = split_multihead(merged, out_dir)
        heads = dict(zip(singles, merge.heads, strict=True))
    else:
        singles, heads = [merged], None
    onnx_fp32: list[Path] = []
    onnx_int8: list[Path] = []
    for ckpt in singles:
        suffix = f"_{heads[ckpt]}" if heads else ""
        target = out_dir / f"merged{suffix}.onnx"
        log(f"exporting {target.name}")
        rep = export_onnx(
            ckpt,
            target,
            ExportConfig(
                size=cfg.size, calib_dir=cfg.calib_dir, slim=cfg.slim, parity_images=cfg.parity_images
            ),
            log=log,
        )
        report["exports"][target.name] = rep.to_json()
        onnx_fp32.append(target)
        if cfg.int8:
            target8 = out_dir / f"merged{suffix}_int8.onnx"
            log(f"exporting {target8.name}")
            rep8 = export_onnx(
                ckpt,
                target8,
                ExportConfig(
                    size=cfg.size,
                    precision="int8",
                    calib_dir=cfg.calib_dir,
                    slim=cfg.slim,
                    parity_images=cfg.parity_images,
                ),
                log=log,
            )
            report["exports"][target8.name] = rep8.to_json()
            onnx_int8.append(target8)
    report["artifacts"]["onnx"] = [str(p) for p in onnx_fp32 + onnx_int8]
    if cfg.engine:
        report["artifacts"]["engines"] = _build_engines(onnx_fp32, report, log)
    if cfg.eval_data is not None:
        report["evaluation"] = _evaluate(inputs, merged, onnx_fp32, onnx_int8, heads, singles, cfg, log)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def _build_engines(
    onnx_files: Sequence[Path], report: dict[str, Any], log: Callable[[str], None]
) -> list[str]:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        note = (
            "--engine: TensorRT is not installed here, no engine built (build it on the device: "
            "`edgeseg build-engine merged.onnx --out merged.engine --fp16`)"
        )
        report["notes"].append(note)
        log(note)
        return []
    from edgeseg.deploy.trt.build import EngineConfig, build_engine

    engines = []
    for onnx_file in onnx_files:
        engine = onnx_file.with_suffix(".engine")
        rep = build_engine(onnx_file, engine, EngineConfig(precision="fp16"), log=log)
        report["exports"][engine.name] = rep.to_json()
        engines.append(str(engine))
    return engines


def _evaluate(
    inputs: Sequence[str | Path],
    merged: Path,
    onnx_fp32: list[Path],
    onnx_int8: list[Path],
    heads: dict[Path, str] | None,
    singles: list[Path],
    cfg: MergeExportConfig,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from edgeseg.merge.evaluation import domain_datasets, evaluate_checkpoints

    datasets = domain_datasets(cfg.eval_data, list(cfg.domains), dataset=cfg.dataset, limit=cfg.eval_limit)  # type: ignore[arg-type]
    log(f"evaluating {len(inputs)} inputs and the merged model on {', '.join(cfg.domains)}")
    scores = [s.to_json() for s in evaluate_checkpoints([*inputs, merged], datasets)]
    domain_of = None
    if heads:
        by_ckpt = dict(zip(singles, onnx_fp32, strict=True))
        domain_of = {by_ckpt[c]: d for c, d in heads.items()}
        if onnx_int8:
            domain_of.update({i8: d for (c, d), i8 in zip(heads.items(), onnx_int8, strict=True)})
    log("evaluating the exported ONNX model(s) through ONNX Runtime")
    scores.append(_segmenter_scores(onnx_fp32, datasets, domain_of, "merged.onnx (FP32, ONNX Runtime)"))
    if onnx_int8:
        scores.append(
            _segmenter_scores(onnx_int8, datasets, domain_of, "merged_int8.onnx (INT8, ONNX Runtime)")
        )
    for s in scores:
        s["miou"] = {d: _clean(v) for d, v in s["miou"].items()}
        s["harmonic_mean"] = _clean(s["harmonic_mean"])
    return {
        "dataset": cfg.dataset,
        "data": str(cfg.eval_data),
        "domains": list(cfg.domains),
        "limit": cfg.eval_limit,
        "scores": scores,
    }


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"# merge-export: {r['method']} merge of {len(r['inputs'])} models", ""]
    lines += [f"- input: `{p}`" for p in r["inputs"]]
    lines += ["", "## Artefacts", ""]
    lines += [f"- checkpoint: `{r['artifacts']['checkpoint']}`"]
    lines += [f"- ONNX: `{p}`" for p in r["artifacts"].get("onnx", [])]
    lines += [f"- engine: `{p}`" for p in r["artifacts"].get("engines", [])]
    lines += [
        "",
        "## Export checks",
        "",
        "| file | precision | label agreement with PyTorch | max abs diff | INT8 vs FP32 (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, e in r["exports"].items():
        if "parity" not in e:
            continue
        p = e["parity"]
        diff = "-" if p.get("max_abs_diff") is None else f"{p['max_abs_diff']:.2e}"
        speed = f"{e['int8']['fp32_ms']:.1f} -> {e['int8']['int8_ms']:.1f}" if e.get("int8") else "-"
        lines.append(f"| {name} | {e['precision']} | {100 * p['agreement']:.3f}% | {diff} | {speed} |")
    ev = r.get("evaluation")
    if ev:
        doms = ev["domains"]
        lines += [
            "",
            f"## Evaluation ({ev['dataset']} val, mIoU %)",
            "",
            "| model | " + " | ".join(doms) + " | H-mean |",
            "|---|" + "---|" * (len(doms) + 1),
        ]
        for s in ev["scores"]:
            lines.append(
                f"| {s['name']} | "
                + " | ".join(_pct(s["miou"][d]) for d in doms)
                + f" | {_pct(s['harmonic_mean'])} |"
            )
    if r["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"
