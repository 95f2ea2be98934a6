"""The training loop: batch -> step losses -> backward -> optimizer -> EMA -> log -> eval -> checkpoint.

Plain and visible on purpose (nanoGPT style). Everything that makes a run reproducible - network and
optimizer state, AMP scaler, every RNG, the step - goes into `<out>/checkpoint.safetensors`, so `resume=True`
continues exactly where an interrupted run stopped. Under `torchrun` each process trains on its own batches
(data.batch_size per process), DDP averages gradients, rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from edgeseg.errors import ConfigError, EdgesegError
from edgeseg.models.layout import param_kind
from edgeseg.uda.batches import to_tensors
from edgeseg.uda.config import DistillConfig, config_to_dict
from edgeseg.uda.data_setup import RunData
from edgeseg.uda.duda import Batch, StepContext, Trainables, distill_step
from edgeseg.uda.ema import ema_alpha, ema_update
from edgeseg.uda.evaluation import disagreement_confusion, evaluate_model
from edgeseg.uda.losses import class_inconsistency, inconsistency_class_weights, normalized_inconsistency
from edgeseg.uda.mixing import augment_source
from edgeseg.uda.nets import DistillNets, WithFeatures, build_networks
from edgeseg.uda.schedule import finetune_start, lr_factor
from edgeseg.uda.state import capture_rng, load_train_state, restore_rng, save_train_state

LOG = logging.getLogger("edgeseg")


CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
# Config sections/keys that may change between an interrupted run and its resumption.
RESUME_FREE = {"train"}


class TrainingDiverged(EdgesegError):
    """A loss became NaN/inf."""


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(requested: str) -> str:
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if requested == "auto":
        return f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={requested} but no CUDA device is visible; use train.device=cpu")
    if requested == "cuda":
        return f"cuda:{local}"
    from edgeseg.devices import check_device

    return check_device(requested)


def dist_info(device: str) -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), device)
    return DistInfo(0, 1, device)


@contextlib.contextmanager
def distributed(device: str):
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1); tear it down afterwards."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    created = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend)
        created = True
    try:
        yield dist_info(device)
    finally:
        if created:
            dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def param_groups(models: list[tuple[str, nn.Module]], cfg: DistillConfig) -> list[dict[str, Any]]:
    """mmcv's paramwise rules as DAFormer uses them (models.layout.param_kind): the head at lr x head_lr_mult,
    norms without weight decay."""
    o = cfg.optim
    groups: list[dict[str, Any]] = []
    for prefix, model in models:
        buckets: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            kind = param_kind(name)
            if kind == "head":
                key = (o.lr * o.head_lr_mult, o.weight_decay)
            elif kind == "norm":
                key = (o.lr, 0.0)
            else:
                key = (o.lr, o.weight_decay)
            buckets.setdefault(key, []).append(p)
        for (lr, wd), params in buckets.items():
            groups.append({"params": params, "lr": lr, "initial_lr": lr, "weight_decay": wd, "name": prefix})
    return groups


def _autocast(cfg: DistillConfig, device: str) -> Callable[[], contextlib.AbstractContextManager]:
    if cfg.train.amp == "off":
        return contextlib.nullcontext
    if cfg.train.amp == "fp16" and not device.startswith("cuda"):
        raise ConfigError("train.amp=fp16 needs a CUDA device; use bf16 or off on CPU")
    dtype = torch.float16 if cfg.train.amp == "fp16" else torch.bfloat16
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return lambda: torch.autocast(kind, dtype=dtype)


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    for key in sorted(set(saved) | set(current)):
        if key in RESUME_FREE:
            continue
        if saved.get(key) != current.get(key):
            raise ConfigError(
                f"cannot resume from '{path}': config '{key}' differs from the interrupted run "
                f"(was {json.dumps(saved.get(key))[:120]}); resume with the same settings"
            )


@dataclass
class RunOutput:
    nets: DistillNets
    student_eval: dict[str, Any]
    teacher_eval: dict[str, Any] | None
    extra_evals: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    steps_run: int = 0


class MetricsLog:
    """Append-only JSONL (rank 0); on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        if resume_step is not None and path.is_file():
            lines = [
                ln
                for ln in path.read_text(errors="replace").splitlines()
                if (rec := _record(ln)) is not None and rec.get("step", 0) <= resume_step
            ]
        from edgeseg.io_utils import write_text_atomic

        write_text_atomic(path, "".join(ln + "\n" for ln in lines))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _record(line: str) -> dict[str, Any] | None:
    """One metrics line as a dict, or None for a blank or torn line (a run killed mid-write)."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("step", 0), int) else None


def measure_class_weights(
    cfg: DistillConfig, nets: DistillNets, data: RunData, device: str
) -> dict[str, Any]:
    """Inconsistency between the small student and the large teacher(s) on target images -> w_c (in place)."""
    teachers = list(nets.teachers) or list(nets.fixed)
    inc = cfg.duda.inconsistency
    meta = getattr(nets.student, "meta", {}) or {}
    confusion = disagreement_confusion(
        nets.student,
        teachers,
        data.target_train,
        cfg.data.target_resize,
        cfg.models.num_classes,
        device,
        inc.images,
        meta.get("mean"),
        meta.get("std"),
    )
    weights = inconsistency_class_weights(confusion, inc.beta)
    nets.class_weights.copy_(weights.to(nets.class_weights.device))
    raw = class_inconsistency(confusion)
    return {
        "inconsistency": [None if math.isnan(v) else round(float(v), 4) for v in raw],
        "normalized": [round(float(v), 4) for v in normalized_inconsistency(raw)],
        "class_weights": [round(float(v), 4) for v in weights],
    }


def train_run(
    cfg: DistillConfig,
    out_dir: Path,
    data: RunData,
    info: DistInfo,
    *,
    resume: bool = False,
    log: Callable[[str], None] = LOG.info,
    label: str = "",
    progress: Callable[[int, int, str], None] | None = None,
) -> RunOutput:
    """Train one method configuration into `out_dir`; returns the networks and final evaluations.
    `progress(done, total, status)` is called after every step (the CLI draws a bar from it)."""
    t_start = time.time()
    device = info.device
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed * 7919 + info.rank)
    np_rng = np.random.default_rng([cfg.seed, info.rank])
    mixing = torch.Generator().manual_seed(cfg.seed * 104729 + info.rank)

    nets = build_networks(cfg).to(device)
    wrap: Callable[[nn.Module], nn.Module] = lambda m: WithFeatures(m)  # noqa: E731
    if info.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        wrap = lambda m: DDP(WithFeatures(m), device_ids=ids)  # noqa: E731
    trainables = Trainables(wrap(nets.student), [wrap(a) for a in nets.aux])
    models = [("student", nets.student)] + [(f"aux{i}", a) for i, a in enumerate(nets.aux)]
    groups = param_groups(models, cfg)
    optimizer = torch.optim.AdamW(
        groups, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda") if cfg.train.amp == "fp16" else None
    autocast = _autocast(cfg, device)
    ckpt_path = out_dir / CHECKPOINT
    config_dict = config_to_dict(cfg)

    start = 0
    if resume and ckpt_path.is_file():
        state = load_train_state(ckpt_path)
        check_resume_config(state.config, config_dict, ckpt_path)
        nets.load_state_dict({k: v.to(device) for k, v in state.nets.items()}, strict=True)
        optimizer.load_state_dict(state.optimizer)
        if scaler is not None and state.scaler:
            scaler.load_state_dict(state.scaler)
        rank_rng = state.extra.get("rng_ranks", {})
        rng = state.rng
        if info.rank > 0 and str(info.rank) in rank_rng:
            r = rank_rng[str(info.rank)]
            rng = type(rng)(
                r["numpy"],
                torch.tensor(r["mixing"], dtype=torch.uint8),
                torch.tensor(r["torch_cpu"], dtype=torch.uint8),
                [],
            )
        restore_rng(rng, np_rng, mixing)
        start = state.step
        if info.main:
            log(f"{label}resuming from step {start}/{cfg.iters} ({ckpt_path})")
    elif ckpt_path.is_file() and not resume:
        raise ConfigError(
            f"{out_dir} already holds a run ({CHECKPOINT}); pass --resume to continue it, "
            "or choose another --out"
        )

    metrics = MetricsLog(out_dir / METRICS, info.main, start if resume else None)
    ft_start = finetune_start(
        cfg.iters,
        cfg.duda.inconsistency.finetune_fraction,
        cfg.duda.inconsistency.enabled and cfg.method in ("duda", "fixed_teacher"),
    )
    meta = getattr(nets.student, "meta", {}) or {}
    mean = tuple(meta.get("mean", (123.675, 116.28, 103.53)))
    std = tuple(meta.get("std", (58.395, 57.12, 57.375)))
    inc = cfg.duda.inconsistency

    def save(step: int) -> None:
        rng = capture_rng(np_rng, mixing)
        ranks = {}
        if info.world > 1:
            mine = {"numpy": rng.numpy, "mixing": rng.mixing.tolist(), "torch_cpu": rng.torch_cpu.tolist()}
            gathered: list[Any] = [None] * info.world
            dist.all_gather_object(gathered, mine)
            ranks = {str(r): g for r, g in enumerate(gathered) if r > 0}
        if info.main:
            save_train_state(
                ckpt_path,
                step=step,
                nets=nets,
                optimizer=optimizer,
                scaler=scaler,
                rng=rng,
                config=config_dict,
                extra={"rng_ranks": ranks},
            )

    name = label.strip() or cfg.method

    def report(done: int, status: str = "") -> None:
        if progress is not None and info.main:
            progress(done, cfg.iters, f"{name} {status}".rstrip())

    steps_run = 0
    report(start)
    for step in range(start, cfg.iters):
        # Fine-tuning phase: (re-)measure the student/teacher inconsistency on target images.
        if step >= ft_start and (
            step == ft_start or (inc.refresh_every > 0 and (step - ft_start) % inc.refresh_every == 0)
        ):
            stats = measure_class_weights(cfg, nets, data, device)
            metrics.write({"step": step, "event": "inconsistency", **stats})
        factor = lr_factor(
            step,
            cfg.iters,
            cfg.optim.warmup_iters,
            cfg.optim.warmup_ratio,
            cfg.optim.poly_power,
            cfg.optim.min_lr / cfg.optim.lr if cfg.optim.lr > 0 else 0.0,
        )
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor
        src_x, src_y = to_tensors(*data.source.batch(np_rng, cfg.data.batch_size), device, mean, std)
        tgt_x, tgt_y = to_tensors(*data.target.batch(np_rng, cfg.data.batch_size), device, mean, std)
        if cfg.method != "oracle":
            src_x = augment_source(cfg.data.source_augment, src_x, mean, std, mixing)
        nets.student.train()
        for a in nets.aux:
            a.train()
        ctx = StepContext(step, ft_start, mixing, mean, std, autocast)
        out = distill_step(cfg, nets, trainables, Batch(src_x, src_y, tgt_x, tgt_y), ctx)
        total = sum(out.losses.values())
        if not torch.isfinite(total):
            raise TrainingDiverged(
                f"{label}loss became {float(total)} at step {step}; lower optim.lr or use train.amp=off"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(total).backward()
            scaler.unscale_(optimizer)
        else:
            total.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.optim.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        # Mean teachers follow their students (after the student's (step+1)-th update).
        for i, (teacher, aux) in enumerate(zip(nets.teachers, nets.aux, strict=True)):
            if f"aux{i}" in out.trained:
                ema_update(teacher, aux, ema_alpha(step + 1, cfg.uda.ema_alpha))
        if nets.student_ema is not None:
            ema_update(nets.student_ema, nets.student, ema_alpha(step + 1, cfg.uda.ema_alpha))
        steps_run += 1
        done = step + 1
        if done % max(cfg.train.log_every, 1) == 0 or done == cfg.iters:
            values = {k: round(float(v.detach()), 5) for k, v in out.losses.items()}
            metrics.write(
                {
                    "step": done,
                    "lr": optimizer.param_groups[0]["lr"],
                    "time_s": round(time.time() - t_start, 2),
                    **{f"loss/{k}": v for k, v in values.items()},
                    **{k: round(v, 5) for k, v in out.logs.items()},
                }
            )
            status = " ".join(f"{k.replace('student.', 's.')}={v:.3f}" for k, v in values.items())
            report(done, status)
        else:
            report(done)
        if cfg.train.eval_every > 0 and done % cfg.train.eval_every == 0 and done < cfg.iters:
            if info.main:
                result = evaluate_model(nets.student, data.val, cfg.data, device)
                metrics.write({"step": done, "event": "eval", "student_miou": result.miou})
                log(f"{label}step {done}: student target mIoU {100 * result.miou:.2f}")
            barrier(info)
        if cfg.train.ckpt_every > 0 and done % cfg.train.ckpt_every == 0 and done < cfg.iters:
            save(done)

    save(cfg.iters)
    student_eval = teacher_eval = None
    extra: dict[str, dict[str, Any]] = {}
    if info.main:
        student_eval = evaluate_model(nets.student, data.val, cfg.data, device).to_json()
        if len(nets.teachers):
            teacher_eval = evaluate_model(nets.teachers[0], data.val, cfg.data, device).to_json()
        if nets.student_ema is not None:
            extra["student_ema"] = evaluate_model(nets.student_ema, data.val, cfg.data, device).to_json()
        metrics.write(
            {
                "step": cfg.iters,
                "event": "final",
                "student_miou": student_eval["miou"],
                "teacher_miou": teacher_eval["miou"] if teacher_eval else None,
            }
        )
    barrier(info)
    return RunOutput(nets, student_eval or {}, teacher_eval, extra, time.time() - t_start, steps_run)
