"""`edgeseg pretrain`: pretrain an MiT encoder on a generic corpus (edgeseg.data.corpora; default `shapes`).

    result = run_pretrain(PretrainConfig(arch="segformer_b1", iters=3000), Path("runs/pretrain_b1"))

Supervised dense prediction of (texture family, shape kind) on an infinite stream of rendered images,
with the model's own decode head (discarded afterwards, as an ImageNet classifier is). Image i of step s is
corpus image `s * batch_size + i`, rendered deterministically, so the data needs no state and `--resume`
continues bit-for-bit from the last checkpoint. Outputs in the run folder:

    encoder.safetensors     the encoder only (kind "encoder"): what `models.*_init` and `weights pack` take
    checkpoint.safetensors  resumable train state (network, optimizer, RNG, step, config)
    metrics.jsonl           loss / lr per logged step, held-out pixel accuracy and mIoU per evaluation
    report.json             config, final held-out scores, wall time, machine, the exact command
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import ConfigError

LOG = logging.getLogger("edgeseg")


CHECKPOINT = "checkpoint.safetensors"
ENCODER = "encoder.safetensors"
Progress = Callable[[int, int, str], None]
AUGMENTS = ("none", "photometric")


@dataclass(frozen=True)
class PretrainConfig:
    arch: str = "segformer_b1"
    iters: int = 3000
    batch_size: int = 8
    size: tuple[int, int] = (96, 192)
    lr: float = 6e-4
    weight_decay: float = 0.05
    warmup_iters: int = 150
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1
    ckpt_every: int = 250
    log_every: int = 25
    eval_every: int = 500
    eval_images: int = 96
    augment: str = "none"  # "none" | "photometric" (uda.mixing.photometric_augment on training images)
    corpus: str = "shapes"  # edgeseg.data.corpora.CORPORA

    def __post_init__(self) -> None:
        from edgeseg.models.registry import model_spec

        model_spec(self.arch)  # unknown names -> one line listing the registry
        if self.iters < 1 or self.batch_size < 1:
            raise ConfigError("--iters and --batch-size must be >= 1")
        if min(self.size) < 32 or any(s % 32 for s in self.size):
            raise ConfigError(
                f"--size {self.size[0]}x{self.size[1]}: both sides must be multiples of 32 (>= 32)"
            )
        from edgeseg.data.corpora import get_corpus

        get_corpus(self.corpus)  # unknown names -> one line listing the corpora
        if self.augment not in AUGMENTS:
            raise ConfigError(f"--augment {self.augment!r}: choose one of {', '.join(AUGMENTS)}")
        if not (0 < self.lr < 1):
            raise ConfigError(f"--lr {self.lr} is outside (0, 1)")


@dataclass
class PretrainResult:
    encoder_path: Path
    report: dict[str, Any]


def corpus_batch(
    seed: int, first: int, count: int, size: tuple[int, int], corpus: str = "shapes"
) -> tuple[np.ndarray, np.ndarray]:
    """Images first..first+count-1 of `corpus` with stream `seed`: (N,H,W,3 BGR uint8, N,H,W uint8)."""
    from edgeseg.data.corpora import get_corpus
    from edgeseg.data.synth_generic import corpus_rng

    spec = get_corpus(corpus)
    render = getattr(spec.load(), spec.render)
    pairs = [render(corpus_rng(seed, first + i), size) for i in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    t = (step - cfg.warmup_iters) / max(cfg.iters - cfg.warmup_iters, 1)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def evaluate_corpus(model: Any, cfg: PretrainConfig) -> dict[str, float]:
    """Pixel accuracy and mIoU on held-out corpus images (stream seed + 1, never trained on)."""
    import torch

    from edgeseg.data.corpora import get_corpus
    from edgeseg.evaluate import ConfusionMatrix, mean_iou, per_class_iou, pixel_accuracy
    from edgeseg.uda.batches import to_tensors

    model.eval()
    conf = ConfusionMatrix(get_corpus(cfg.corpus).load().NUM_CLASSES)
    with torch.no_grad():
        for first in range(0, cfg.eval_images, 16):
            n = min(16, cfg.eval_images - first)
            x, y = to_tensors(*corpus_batch(cfg.seed + 1, first, n, cfg.size, cfg.corpus))
            logits = torch.nn.functional.interpolate(
                model(x), size=y.shape[-2:], mode="bilinear", align_corners=False
            )
            conf.update(logits.argmax(1).numpy(), y.numpy())
    model.train()
    return {"pixel_acc": pixel_accuracy(conf.matrix), "miou": mean_iou(per_class_iou(conf.matrix))}


def _param_groups(model: Any, cfg: PretrainConfig) -> list[dict[str, Any]]:
    from edgeseg.models.layout import param_kind

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or param_kind(name) == "norm" else decay).append(p)
    return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def machine_facts() -> dict[str, Any]:
    import os

    import torch

    from edgeseg.bench.device import read_cpu

    return {
        "cpu": read_cpu()["model"] or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def run_pretrain(
    cfg: PretrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    command: str = "",
    log: Callable[[str], None] = LOG.info,
    progress: Progress | None = None,
) -> PretrainResult:
    """Train `cfg.arch` on the corpus into `out_dir` (resumable); returns the encoder file and report."""
    import torch

    from edgeseg.checkpoint import model_meta, save_state
    from edgeseg.data.corpora import get_corpus
    from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD
    from edgeseg.io_utils import write_json_atomic
    from edgeseg.models.registry import create_model
    from edgeseg.uda.batches import to_tensors
    from edgeseg.uda.mixing import photometric_augment
    from edgeseg.uda.state import capture_rng, load_train_state, restore_rng, save_train_state
    from edgeseg.uda.trainer import MetricsLog

    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT
    if ckpt.is_file() and not resume:
        raise ConfigError(
            f"{out_dir} already holds a pretraining run; pass --resume to continue it, or choose "
            "another --out"
        )
    if resume and not ckpt.is_file():
        raise ConfigError(f"--resume: {out_dir} holds no {CHECKPOINT} to continue from")
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)  # unused by the corpus (indexed), kept for the state format
    gen = torch.Generator().manual_seed(cfg.seed)
    corpus = get_corpus(cfg.corpus)
    corpus_module = corpus.load()
    model = create_model(cfg.arch, num_classes=corpus_module.NUM_CLASSES)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, betas=(0.9, 0.999))
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    start, elapsed_before, history = 0, 0.0, []
    if resume:
        state = load_train_state(ckpt)
        saved = {"corpus": "shapes", **state.config}  # runs from before --corpus existed used `shapes`
        if saved != config:
            diff = sorted(k for k in config if saved.get(k) != config[k])
            raise ConfigError(
                f"--resume: the run in {out_dir} was started with other settings ({', '.join(diff)}); "
                "resume with the same options"
            )
        model.load_state_dict(state.nets, strict=True)
        optimizer.load_state_dict(state.optimizer)
        restore_rng(state.rng, np_rng, gen)
        start = state.step
        elapsed_before = float(state.extra.get("elapsed_s", 0.0))
        history = list(state.extra.get("history", []))
        log(f"resuming {cfg.arch} pretraining from step {start}/{cfg.iters}")
    # on resume, lines logged after the checkpoint's step (before the interruption) are dropped
    metrics = MetricsLog(out_dir / "metrics.jsonl", True, start if resume else None)
    t0 = time.time()

    def elapsed() -> float:
        return elapsed_before + time.time() - t0

    def save(step: int) -> None:
        save_train_state(
            ckpt,
            step=step,
            nets=model,
            optimizer=optimizer,
            scaler=None,
            rng=capture_rng(np_rng, gen),
            config=config,
            extra={"elapsed_s": elapsed(), "history": history},
        )

    for step in range(start, cfg.iters):
        lr = lr_at(step, cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr
        x, y = to_tensors(
            *corpus_batch(cfg.seed, step * cfg.batch_size, cfg.batch_size, cfg.size, cfg.corpus)
        )
        if cfg.augment == "photometric":  # a generator per step: resume stays exact without extra state
            x = photometric_augment(
                x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            )
        logits = model(x)
        # loss at the logits' stride-4 grid (nearest-downsampled labels): the CPU budget
        y_small = torch.nn.functional.interpolate(y[:, None].float(), size=logits.shape[-2:], mode="nearest")[
            :, 0
        ].long()
        loss = torch.nn.functional.cross_entropy(logits, y_small)
        if not torch.isfinite(loss):
            raise ConfigError(f"pretraining diverged (loss {loss.item()}) at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.iters:
            metrics.write(
                {"step": done, "loss": round(loss.item(), 5), "lr": lr, "time_s": round(elapsed(), 1)}
            )
        if cfg.eval_every > 0 and done % cfg.eval_every == 0 and done < cfg.iters:
            scores = evaluate_corpus(model, cfg)
            history.append({"step": done, **scores})
            metrics.write({"step": done, "event": "eval", **scores})
        if progress is not None:
            progress(done, cfg.iters, f"pretrain {cfg.arch} loss {loss.item():.3f}")
        if cfg.ckpt_every > 0 and done % cfg.ckpt_every == 0 and done < cfg.iters:
            save(done)
    save(cfg.iters)
    final = evaluate_corpus(model, cfg)
    history.append({"step": cfg.iters, **final})
    metrics.write({"step": cfg.iters, "event": "final", **final})

    provenance = {
        "pretrain": {
            "corpus": corpus.module,
            "corpus_version": corpus_module.CORPUS_VERSION,
            "iters": cfg.iters,
            "seed": cfg.seed,
            "augment": cfg.augment,
            "command": command,
        }
    }
    meta = model_meta(model, kind="encoder", provenance=provenance, classes=corpus_module.class_names())
    encoder_state = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    encoder_path = out_dir / ENCODER
    save_state(encoder_state, encoder_path, meta)
    report = {
        "arch": cfg.arch,
        "config": config,
        "command": command,
        "steps_run": cfg.iters - start,
        "wall_time_s": round(elapsed(), 1),
        "machine": machine_facts(),
        "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
        "heldout": final,
        "history": history,
        "encoder": str(encoder_path),
    }
    write_json_atomic(out_dir / "report.json", report)
    log(
        f"pretrained {cfg.arch}: held-out pixel accuracy {100 * final['pixel_acc']:.1f}%, mIoU "
        f"{100 * final['miou']:.1f} ({report['wall_time_s']:.0f} s); encoder: {encoder_path}"
    )
    return PretrainResult(encoder_path, report)
