"""`run_distill(config, out_dir) -> DistillResult`: the library entry point behind `edgeseg distill`.

Checks everything that can be checked cheaply first (config values, initial-weight files and their class
counts, dataset folders), renders the synthetic benchmark if the config uses it and it is missing, trains the
source-only baseline (same iterations, same seed) when asked, then the configured method, and writes:

    <out>/student.safetensors      the adapted small student (edgeseg checkpoint, provenance inside)
    <out>/teacher.safetensors      the large EMA teacher (train.save_teacher = true)
    <out>/report.json              source_only.target_miou, student.target_miou, teacher.target_miou, wall_time_s
    <out>/config.toml, metrics.jsonl, checkpoint.safetensors (resumable state)
    <out>/source_only/...          the baseline run, same layout
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.io_utils import removed_on_failure, write_json_atomic, write_text_atomic
from edgeseg.uda.config import DistillConfig, config_to_dict, to_toml, validate

LOG = logging.getLogger("edgeseg")


REPORT = "report.json"


@dataclass
class DistillResult:
    out_dir: Path
    student_path: Path
    teacher_path: Path | None
    report: dict[str, Any]

    @property
    def student_miou(self) -> float | None:
        return self.report["student"]["target_miou"]

    @property
    def source_only_miou(self) -> float | None:
        return (self.report.get("source_only") or {}).get("target_miou")


def _summary(ev: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ev:
        return None
    return {"target_miou": ev.get("miou"), "pixel_accuracy": ev.get("pixel_accuracy"), "iou": ev.get("iou")}


def _provenance(cfg: DistillConfig, role: str) -> dict[str, Any]:
    import edgeseg

    return {
        "tool": "edgeseg distill",
        "version": getattr(edgeseg, "__version__", "?"),
        "role": role,
        "method": cfg.method,
        "preset": cfg.name,
        "seed": cfg.seed,
        "iters": cfg.iters,
        "source": f"{cfg.data.source}/{cfg.data.source_domain}".rstrip("/"),
        "target": f"{cfg.data.target}/{cfg.data.target_domain}".rstrip("/"),
        "large": cfg.models.large,
        "small": cfg.models.small,
        "small_init": cfg.models.small_init or None,
        "large_init": cfg.models.large_init or None,
    }


def preflight(cfg: DistillConfig, out_dir: Path, resume: bool = False) -> None:
    """Every user error that needs no training: raises one clear line."""
    from edgeseg.errors import ConfigError
    from edgeseg.preflight import check_output_dir
    from edgeseg.uda.data_setup import resolved_roots
    from edgeseg.uda.nets import check_init_files
    from edgeseg.uda.trainer import CHECKPOINT, resolve_device

    validate(cfg)
    check_output_dir(out_dir)
    if resume and not _has_checkpoint(out_dir):
        raise ConfigError(
            f"--resume: {out_dir} holds no interrupted run ({CHECKPOINT}) to continue; run without "
            "--resume to start one, or point --out at the run folder"
        )
    if cfg.train.amp == "fp16" and not resolve_device(cfg.train.device).startswith("cuda"):
        raise ConfigError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 or off on CPU")
    check_init_files(cfg)
    resolved_roots(cfg, out_dir)


def _has_checkpoint(out_dir: Path) -> bool:
    from edgeseg.uda.trainer import CHECKPOINT

    return any((out_dir / sub / CHECKPOINT).is_file() for sub in ("", "source_only"))


def run_distill(
    cfg: DistillConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    log: Callable[[str], None] = LOG.info,
    progress: Callable[[int, int, str], None] | None = None,
) -> DistillResult:
    """Adapt a small student to the target domain with `cfg.method`; see the module docstring.
    `progress(done, total, status)` follows each training run (the source-only baseline, then the method)."""
    from edgeseg.checkpoint import save_model
    from edgeseg.uda.data_setup import (
        ensure_synthetic,
        load_run_data,
        needed_synthetic_domains,
        synthetic_root,
    )
    from edgeseg.uda.trainer import barrier, distributed, resolve_device, train_run

    out_dir = Path(out_dir)
    t0 = time.time()
    preflight(cfg, out_dir, resume)
    device = resolve_device(cfg.train.device)
    single = os.environ.get("WORLD_SIZE", "1") == "1"
    # a run that fails before its first checkpoint leaves no folder behind (a checkpoint is kept: --resume)
    cleanup = removed_on_failure(out_dir, keep=_has_checkpoint) if single else contextlib.nullcontext()
    with cleanup, distributed(device) as info:
        if info.main:
            ensure_synthetic(cfg, synthetic_root(cfg, out_dir), needed_synthetic_domains(cfg), log)
            write_text_atomic(out_dir / "config.toml", to_toml(cfg))
        barrier(info)
        # class statistics for rare-class sampling, cached next to the outputs (rank 0 writes it first)
        rcs_cache = out_dir / "source_class_stats.json"
        report: dict[str, Any] = {
            "preset": cfg.name,
            "method": cfg.method,
            "seed": cfg.seed,
            "iters": cfg.iters,
            "source": _provenance(cfg, "")["source"],
            "target": _provenance(cfg, "")["target"],
            "models": {"large": cfg.models.large, "small": cfg.models.small},
        }
        baseline = None
        if cfg.train.source_only_baseline and cfg.method not in ("source_only", "oracle"):
            base_cfg = dataclasses.replace(
                cfg, method="source_only", train=dataclasses.replace(cfg.train, source_only_baseline=False)
            )
            base_data = load_run_data(base_cfg, out_dir, rcs_cache)
            barrier(info)
            baseline = train_run(
                base_cfg,
                out_dir / "source_only",
                base_data,
                info,
                resume=resume,
                log=log,
                label="source-only ",
                progress=progress,
            )
            if info.main:
                save_model(
                    baseline.nets.student,
                    out_dir / "source_only" / "student.safetensors",
                    provenance=_provenance(base_cfg, "source-only baseline"),
                )
                report["source_only"] = {
                    **_summary(baseline.student_eval),
                    "wall_time_s": round(baseline.wall_time_s, 1),
                }
        data = load_run_data(cfg, out_dir, rcs_cache)
        run = train_run(
            cfg, out_dir, data, info, resume=resume, log=log, label=f"{cfg.method} ", progress=progress
        )
        student_path = out_dir / "student.safetensors"
        teacher_path = None
        if info.main:
            prov = _provenance(cfg, "student")
            prov["target_miou"] = run.student_eval.get("miou")
            save_model(run.nets.student, student_path, provenance=prov)
            if cfg.train.save_teacher and len(run.nets.teachers):
                teacher_path = out_dir / "teacher.safetensors"
                save_model(run.nets.teachers[0], teacher_path, provenance=_provenance(cfg, "teacher (EMA)"))
            report["student"] = {
                **_summary(run.student_eval),
                "checkpoint": str(student_path),
                "wall_time_s": round(run.wall_time_s, 1),
            }
            report["teacher"] = _summary(run.teacher_eval)
            for name, ev in run.extra_evals.items():
                report[name] = _summary(ev)
            if baseline is not None and report["student"]["target_miou"] is not None:
                report["gain_over_source_only"] = (
                    report["student"]["target_miou"] - report["source_only"]["target_miou"]
                )
            report["wall_time_s"] = round(time.time() - t0, 1)
            report["config"] = config_to_dict(cfg)
            write_json_atomic(out_dir / REPORT, report)
        barrier(info)
    return DistillResult(out_dir, student_path, teacher_path, report)
