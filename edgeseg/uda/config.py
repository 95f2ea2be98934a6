"""DUDA / self-training configuration: frozen dataclasses, TOML presets, `--set key=value` overrides.

A config is a tree of frozen dataclasses. Presets live in `edgeseg/presets/*.toml` (shipped in the wheel);
a TOML file or `--set section.key=value` overrides any field. An unknown key, a value of the wrong type or
an unknown choice is a `ConfigError` naming the key - raised before any data is read or model built.

    cfg = load_config(preset="synthetic", overrides=["iters=200", "duda.kd=kl"])
    cfg.duda.gradual.schedule  # "linear"
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from edgeseg.config_engine import (
    build,
    check_finite,
    check_literals,
    config_to_dict,
    merge,
    parse_override,
    read_toml,
    to_toml,
)
from edgeseg.errors import ConfigError, InputPathError

__all__ = [
    "DistillConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_override",
    "replace_config",
    "to_toml",
    "validate",
]

Method = Literal["duda", "self_training", "fixed_teacher", "source_only", "oracle"]
METHODS: tuple[str, ...] = typing.get_args(Method)
TeacherKind = Literal["large_ema", "small_ema", "fixed"]
TEACHER_KINDS: tuple[str, ...] = typing.get_args(TeacherKind)
THING_CLASSES = (6, 7, 11, 12, 13, 14, 15, 16, 17, 18)  # DAFormer's FD classes (Cityscapes trainIds)


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"
    source_root: str = ""  # "" with synthetic data: <out>/synthetic, rendered there if missing
    source_domain: str = "source"
    source_split: str = "train"
    target: str = "synthetic"
    target_root: str = ""
    target_domain: str = "city"
    target_split: str = "train"
    val_split: str = "val"
    val_max_images: int = 0  # 0 = the whole split
    source_resize: tuple[int, int] = (0, 0)  # (h, w) images are resized to before cropping; (0, 0) = keep
    target_resize: tuple[int, int] = (0, 0)
    crop: tuple[int, int] = (128, 256)
    batch_size: int = 2
    flip: bool = True
    # Appearance augmentation of the labelled source images (every method but oracle, which trains on the
    # target): "none"; "photometric" (SimCLR-style jitter, greyscale, blur); "randomize" (hue from the whole
    # circle, saturation, white balance, brightness, contrast, greyscale: colour stops being a class cue).
    source_augment: Literal["none", "photometric", "randomize"] = "none"
    cat_max_ratio: float = 1.0  # mmseg RandomCrop: retry crops where one class covers more than this
    rcs_temperature: float = 0.01  # rare-class sampling of source images; <= 0 samples uniformly
    rcs_min_pixels: int = 3000  # an image "contains" a class with at least this many pixels (after resize)
    rcs_min_crop_ratio: float = 0.5
    cache_images: bool = True  # keep decoded (resized) images in memory: worth it for small datasets
    eval_resize: tuple[int, int] = (0, 0)  # val images are resized to this for inference; (0, 0) = keep
    eval_mode: Literal["whole", "slide"] = "whole"  # "whole" | "slide"
    eval_crop: tuple[int, int] = (512, 512)
    eval_stride: tuple[int, int] = (341, 341)
    eval_classes: tuple[int, ...] = ()  # classes averaged into mIoU (e.g. SYNTHIA's 16); () = all


@dataclass(frozen=True)
class SyntheticConfig:
    """How the synthetic benchmark is rendered when `data.*_root` is empty (only for dataset 'synthetic')."""

    size: tuple[int, int] = (128, 256)
    train_images: int = 200
    val_images: int = 40
    test_images: int = (
        0  # the held-out `test` split (final numbers only; set data.val_split = "test" to score it)
    )
    seed: int = 0


@dataclass(frozen=True)
class ModelsConfig:
    large: str = "segformer_small"  # teacher / auxiliary student architecture
    small: str = "segformer_tiny"  # the deployed student
    num_classes: int = 19
    large_init: str = ""  # edgeseg checkpoint (kind segmentor or encoder); "" = random init
    small_init: str = ""  # shared initialisation of domain students (merging needs it)
    teacher_init: tuple[
        str, ...
    ] = ()  # fixed, already adapted teacher(s): method fixed_teacher / extra teachers


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 6e-5
    head_lr_mult: float = 10.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    poly_power: float = 1.0
    min_lr: float = 0.0
    grad_clip: float = 0.0  # 0 = off


@dataclass(frozen=True)
class MICConfig:
    """Masked image consistency (Hoyer et al., MIC, CVPR 2023) for the large auxiliary student."""

    enabled: bool = False
    mask_ratio: float = 0.7
    block_size: int = 64
    weight: float = 1.0


@dataclass(frozen=True)
class UDAConfig:
    """The DAFormer/MIC self-training base shared by the large pair and the small-only baseline."""

    ema_alpha: float = 0.999
    teacher_bn: Literal["eval", "batch"] = (
        "eval"  # "eval": EMA'd running stats | "batch": target batch statistics
    )
    pseudo_threshold: float = 0.968
    pseudo_weighting: Literal["quality", "threshold", "confidence", "none"] = (
        "quality"  # quality | threshold | confidence | none
    )
    quality_scope: Literal["batch", "image"] = (
        "batch"  # quality fraction over the whole batch (DAFormer) or per "image"
    )
    ignore_top: int = 0  # pseudo-label margins (pixels at crop resolution) that get weight 0
    ignore_bottom: int = 0
    ignore_left: int = 0
    ignore_right: int = 0
    mix: Literal["classmix", "none"] = "classmix"  # classmix | none
    # Where labels, pseudo-labels and losses live: "image" (DAFormer: logits upsampled to the crop) or
    # "logits" (labels sampled down to the stride-4 logit grid: ~16x less loss work, what CPU runs use).
    loss_resolution: Literal["image", "logits"] = "image"
    color_jitter_p: float = 0.2
    color_jitter_strength: float = 0.2
    blur: bool = True
    fd_weight: float = 0.0  # feature distance to the frozen initial large backbone (DAFormer: 0.005)
    fd_classes: tuple[int, ...] = THING_CLASSES
    fd_scale_min_ratio: float = 0.75
    mic: MICConfig = field(default_factory=MICConfig)


@dataclass(frozen=True)
class GradualConfig:
    """Pre-adaptation with gradual distillation: the small student's weight on teacher supervision."""

    schedule: Literal["linear", "cosine", "constant", "confidence"] = (
        "linear"  # linear | cosine | constant | confidence
    )
    ramp_fraction: float = 0.5  # of the pre-adaptation iterations
    start: float = 0.0


@dataclass(frozen=True)
class InconsistencyConfig:
    """Fine-tuning phase with class weights from student/teacher disagreement on target images."""

    enabled: bool = True
    finetune_fraction: float = 0.25  # last fraction of `iters`
    beta: float = 1.0
    images: int = 64  # target train images used to measure I_c (0 = all)
    refresh_every: int = 0  # re-measure every N fine-tune iterations (0 = once)
    apply_to: Literal["target", "both"] = "target"  # target | both (source CE too)
    train_large: bool = False  # keep training the large pair during fine-tuning


@dataclass(frozen=True)
class MultiTeacherConfig:
    enabled: bool = True
    # teachers fused for the small student: large_ema (EMA of each large aux student), small_ema (EMA of
    # the small student itself), fixed (models.teacher_init)
    teachers: tuple[TeacherKind, ...] = ("large_ema", "small_ema")
    fusion: Literal["mean", "confidence", "max", "agree"] = "confidence"  # mean | confidence | max | agree
    weights: tuple[float, ...] = ()  # per-teacher weights for fusion "mean" (default equal)
    num_large: int = 1  # independent large aux student / EMA teacher pairs


@dataclass(frozen=True)
class DUDAConfig:
    kd: Literal["ce", "kl", "ce+kl"] = "ce+kl"  # ce (teacher pseudo-labels) | kl (soft teacher) | ce+kl
    ce_weight: float = 1.0
    kl_weight: float = 1.0
    temperature: float = 1.0
    # Pixel weights of the KL term on the target part: "pseudo" (the same quality/threshold weights as the
    # pseudo-label CE: a poor early teacher is not copied) or "uniform" (1, as in plain KD).
    kl_weighting: Literal["uniform", "pseudo"] = "pseudo"
    # Which view the KL term's teacher sees (choice): "clean_target" - the teachers' probabilities on the clean
    # target crop, pasted into the mixed image (source pixels: one-hot labels), compared with the student's
    # view of the mixed, augmented image; "same_input" - the teachers see exactly the student's mixed,
    # augmented image (plain KD on one input; one more forward per teacher).
    kl_view: Literal["clean_target", "same_input"] = "clean_target"
    gradual: GradualConfig = field(default_factory=GradualConfig)
    inconsistency: InconsistencyConfig = field(default_factory=InconsistencyConfig)
    multi_teacher: MultiTeacherConfig = field(default_factory=MultiTeacherConfig)


@dataclass(frozen=True)
class TrainConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["off", "bf16", "fp16"] = "off"  # off | bf16 | fp16 (GPU)
    eval_every: int = 0  # 0 = only at the end
    ckpt_every: int = 0  # 0 = only at the end
    log_every: int = 10
    source_only_baseline: bool = True  # also train a source-only small student with the same budget
    save_teacher: bool = False
    progress: bool = True
    threads: int = 0  # torch intra-op threads; 0 = torch default
    # Diagnostic (labelled targets only, e.g. synthetic): read the target labels, never trained on, to log the
    # precision of confident pseudo-labels (q >= uda.pseudo_threshold) as student.pl_precision / auxN.pl_precision
    pl_precision: bool = False


@dataclass(frozen=True)
class DistillConfig:
    name: str = "custom"
    method: Method = "duda"
    seed: int = 0
    iters: int = 40000
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    uda: UDAConfig = field(default_factory=UDAConfig)
    duda: DUDAConfig = field(default_factory=DUDAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------------------------- building
def config_from_dict(values: dict[str, Any]) -> DistillConfig:
    cfg = build(DistillConfig, values)
    validate(cfg)
    return cfg


def list_presets() -> list[str]:
    root = resources.files("edgeseg") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def preset_dict(name: str) -> dict[str, Any]:
    """A preset's TOML as a dict; `base = "other"` inherits another preset first."""
    path = resources.files("edgeseg") / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(list_presets())}")
    values = read_toml(path.read_text(encoding="utf-8"), f"preset '{name}'")
    base = values.pop("base", None)
    return merge(preset_dict(base), values) if base else values


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> DistillConfig:
    """preset (default 'synthetic' when no file is given) <- TOML file <- `key=value` overrides."""
    if preset and config_file:
        raise ConfigError("give either --preset or --config, not both")
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise InputPathError(f"config file '{path}' does not exist")
        values = read_toml(path.read_text(encoding="utf-8"), f"config '{path}'")
        base = values.pop("base", None)
        if base:
            values = merge(preset_dict(base), values)
    else:
        values = preset_dict(preset or "synthetic")
    for text in overrides:
        values = merge(values, parse_override(text))
    return config_from_dict(values)


def replace_config(
    cfg: DistillConfig, overrides: list[str] | tuple[str, ...] | dict[str, Any]
) -> DistillConfig:
    """A copy of `cfg` with overrides (`key=value` strings, or a nested dict) applied and validated."""
    values = config_to_dict(cfg)
    if isinstance(overrides, dict):
        values = merge(values, overrides)
    else:
        for text in overrides:
            values = merge(values, parse_override(text))
    return config_from_dict(values)


# --------------------------------------------------------------------------------------------- validation
def validate(cfg: DistillConfig) -> None:
    """Value checks that need no data or models; raise one ConfigError line."""
    check_finite(config_to_dict(cfg))
    check_literals(cfg)
    if not 0 <= cfg.seed <= 2**32 - 1:
        raise ConfigError(f"seed must be in [0, {2**32 - 1}], got {cfg.seed}")
    if cfg.iters < 1:
        raise ConfigError("iters must be >= 1")
    if cfg.data.batch_size < 1:
        raise ConfigError("data.batch_size must be >= 1")
    if min(cfg.data.crop) < 32:
        raise ConfigError(f"data.crop {cfg.data.crop} is too small (>= 32x32)")
    mt = cfg.duda.multi_teacher
    if mt.num_large < 1:
        raise ConfigError("duda.multi_teacher.num_large must be >= 1")
    if mt.fusion == "mean" and mt.weights and len(mt.weights) != len(mt.teachers):
        raise ConfigError(
            f"duda.multi_teacher.weights has {len(mt.weights)} values for {len(mt.teachers)} teachers"
        )
    if cfg.method == "fixed_teacher" and not cfg.models.teacher_init:
        raise ConfigError('method fixed_teacher needs models.teacher_init = ["teacher.safetensors"]')
    if "fixed" in mt.teachers and mt.enabled and cfg.method == "duda" and not cfg.models.teacher_init:
        raise ConfigError("duda.multi_teacher.teachers lists 'fixed' but models.teacher_init is empty")
    inc = cfg.duda.inconsistency
    if not 0.0 <= inc.finetune_fraction < 1.0:
        raise ConfigError("duda.inconsistency.finetune_fraction must be in [0, 1)")
    if not 0.0 <= cfg.duda.gradual.ramp_fraction <= 1.0:
        raise ConfigError("duda.gradual.ramp_fraction must be in [0, 1]")
    if cfg.optim.lr < 0 or cfg.optim.weight_decay < 0:
        raise ConfigError("optim.lr and optim.weight_decay must be >= 0")
    if cfg.duda.temperature <= 0:
        raise ConfigError("duda.temperature must be > 0")
    if not 0.0 < cfg.uda.ema_alpha < 1.0:
        raise ConfigError("uda.ema_alpha must be in (0, 1)")
    if cfg.uda.mic.enabled and cfg.uda.mic.block_size < 1:
        raise ConfigError("uda.mic.block_size must be >= 1")
    synthetic = "synthetic" in (cfg.data.source, cfg.data.target)
    if synthetic and min(cfg.synthetic.size) < min(cfg.data.crop) and cfg.data.source_resize == (0, 0):
        raise ConfigError(f"synthetic.size {cfg.synthetic.size} is smaller than data.crop {cfg.data.crop}")
