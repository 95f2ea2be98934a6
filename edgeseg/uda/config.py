"""DUDA / self-training configuration: frozen dataclasses, TOML presets, `--set key=value` overrides.

A config is a tree of frozen dataclasses. Presets live in `edgeseg/presets/*.toml` (shipped in the wheel);
a TOML file or `--set section.key=value` overrides any field. An unknown key, a value of the wrong type or
an unknown choice is a `ConfigError` naming the key - raised before any data is read or model built.

    cfg = load_config(preset="synthetic", overrides=["iters=200", "duda.kd=kl"])
    cfg.duda.gradual.schedule  # "linear"
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, InputPathError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - py3.10
    import tomli as tomllib

METHODS = ("duda", "self_training", "fixed_teacher", "source_only", "oracle")
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
    cat_max_ratio: float = 1.0  # mmseg RandomCrop: retry crops where one class covers more than this
    rcs_temperature: float = 0.01  # rare-class sampling of source images; <= 0 samples uniformly
    rcs_min_pixels: int = 3000  # an image "contains" a class with at least this many pixels (after resize)
    rcs_min_crop_ratio: float = 0.5
    cache_images: bool = True  # keep decoded (resized) images in memory: worth it for small datasets
    eval_resize: tuple[int, int] = (0, 0)  # val images are resized to this for inference; (0, 0) = keep
    eval_mode: str = "whole"  # "whole" | "slide"
    eval_crop: tuple[int, int] = (512, 512)
    eval_stride: tuple[int, int] = (341, 341)
    eval_classes: tuple[int, ...] = ()  # classes averaged into mIoU (e.g. SYNTHIA's 16); () = all


@dataclass(frozen=True)
class SyntheticConfig:
    """How the synthetic benchmark is rendered when `data.*_root` is empty (only for dataset 'synthetic')."""

    size: tuple[int, int] = (128, 256)
    train_images: int = 200
    val_images: int = 40
    test_images: int = 0  # the held-out `test` split (final numbers only; set data.val_split = "test" to score it)
    seed: int = 0


@dataclass(frozen=True)
class ModelsConfig:
    large: str = "segformer_small"  # teacher / auxiliary student architecture
    small: str = "segformer_tiny"  # the deployed student
    num_classes: int = 19
    large_init: str = ""  # edgeseg checkpoint (kind segmentor or encoder); "" = random init
    small_init: str = ""  # shared initialisation of domain students (merging needs it)
    teacher_init: tuple[str, ...] = ()  # fixed, already adapted teacher(s): method fixed_teacher / extra teachers


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
    teacher_bn: str = "eval"  # "eval": EMA'd running stats | "batch": target batch statistics
    pseudo_threshold: float = 0.968
    pseudo_weighting: str = "quality"  # quality | threshold | confidence | none
    quality_scope: str = "batch"  # quality fraction over the whole batch (DAFormer) or per "image"
    ignore_top: int = 0  # pseudo-label margins (pixels at crop resolution) that get weight 0
    ignore_bottom: int = 0
    ignore_left: int = 0
    ignore_right: int = 0
    mix: str = "classmix"  # classmix | none
    # Where labels, pseudo-labels and losses live: "image" (DAFormer: logits upsampled to the crop) or
    # "logits" (labels sampled down to the stride-4 logit grid: ~16x less loss work, what CPU runs use).
    loss_resolution: str = "image"
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

    schedule: str = "linear"  # linear | cosine | constant | confidence
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
    apply_to: str = "target"  # target | both (source CE too)
    train_large: bool = False  # keep training the large pair during fine-tuning


@dataclass(frozen=True)
class MultiTeacherConfig:
    enabled: bool = True
    # teachers fused for the small student: large_ema (EMA of each large aux student), small_ema (EMA of
    # the small student itself), fixed (models.teacher_init)
    teachers: tuple[str, ...] = ("large_ema", "small_ema")
    fusion: str = "confidence"  # mean | confidence | max | agree
    weights: tuple[float, ...] = ()  # per-teacher weights for fusion "mean" (default equal)
    num_large: int = 1  # independent large aux student / EMA teacher pairs


@dataclass(frozen=True)
class DUDAConfig:
    kd: str = "ce+kl"  # ce (teacher pseudo-labels) | kl (soft teacher) | ce+kl
    ce_weight: float = 1.0
    kl_weight: float = 1.0
    temperature: float = 1.0
    # Pixel weights of the KL term on the target part: "pseudo" (the same quality/threshold weights as the
    # pseudo-label CE: a poor early teacher is not copied) or "uniform" (1, as in plain KD).
    kl_weighting: str = "pseudo"
    # Which view the KL term's teacher sees (choice): "clean_target" - the teachers' probabilities on the clean
    # target crop, pasted into the mixed image (source pixels: one-hot labels), compared with the student's
    # view of the mixed, augmented image; "same_input" - the teachers see exactly the student's mixed,
    # augmented image (plain KD on one input; one more forward per teacher).
    kl_view: str = "clean_target"
    gradual: GradualConfig = field(default_factory=GradualConfig)
    inconsistency: InconsistencyConfig = field(default_factory=InconsistencyConfig)
    multi_teacher: MultiTeacherConfig = field(default_factory=MultiTeacherConfig)


@dataclass(frozen=True)
class TrainConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "off"  # off | bf16 | fp16 (GPU)
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
    method: str = "duda"
    seed: int = 0
    iters: int = 40000
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    uda: UDAConfig = field(default_factory=UDAConfig)
    duda: DUDAConfig = field(default_factory=DUDAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_CHOICES: dict[str, tuple[str, ...]] = {
    "method": METHODS,
    "data.eval_mode": ("whole", "slide"),
    "uda.teacher_bn": ("eval", "batch"),
    "uda.pseudo_weighting": ("quality", "threshold", "confidence", "none"),
    "uda.quality_scope": ("batch", "image"),
    "uda.mix": ("classmix", "none"),
    "uda.loss_resolution": ("image", "logits"),
    "duda.kd": ("ce", "kl", "ce+kl"),
    "duda.kl_weighting": ("uniform", "pseudo"),
    "duda.kl_view": ("clean_target", "same_input"),
    "duda.gradual.schedule": ("linear", "cosine", "constant", "confidence"),
    "duda.inconsistency.apply_to": ("target", "both"),
    "duda.multi_teacher.fusion": ("mean", "confidence", "max", "agree"),
    "train.amp": ("off", "bf16", "fp16"),
}
TEACHER_KINDS = ("large_ema", "small_ema", "fixed")


# ----------------------------------------------------------------------------------------------- building
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a TOML value to the field type; a mismatch is one clear line naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce(value, next(a for a in typing.get_args(tp) if a is not type(None)), key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], key) for v in value)
            if len(value) == len(args):
                return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
            raise ConfigError(f"config key '{key}' needs {len(args)} values, got {len(value)}")
    else:  # pragma: no cover - every field type is listed above
        raise ConfigError(f"config key '{key}' has an unsupported type {tp}")
    raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        inner = _type_name(args[0])
        return f"a list of {inner}" if args[-1] is Ellipsis else f"a list of {len(args)} {inner}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from nested dicts, rejecting unknown keys."""
    types_ = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in types_:
            known = ", ".join(sorted(types_))
            raise ConfigError(f"unknown config key '{full}'; known keys{' in ' + prefix[:-1] if prefix else ''}: {known}")
        tp = types_[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' is a section; give a table, e.g. [{full}]")
            kwargs[key] = _build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full)
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples -> lists), suitable for JSON/TOML and for rebuilding the config."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def config_from_dict(values: dict[str, Any]) -> DistillConfig:
    cfg = _build(DistillConfig, values)
    validate(cfg)
    return cfg


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """'duda.gradual.schedule=cosine' -> {'duda': {'gradual': {'schedule': 'cosine'}}}.

    The value is read as a TOML value (numbers, true/false, [lists], "strings"); anything that is not
    valid TOML is taken as a bare string, so `--set models.small_init=/path/x.safetensors` works unquoted.
    """
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value (e.g. --set iters=2000)")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    nested: dict[str, Any] = {}
    node = nested
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def list_presets() -> list[str]:
    root = resources.files("edgeseg") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None


def preset_dict(name: str) -> dict[str, Any]:
    """A preset's TOML as a dict; `base = "other"` inherits another preset first."""
    path = resources.files("edgeseg") / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(list_presets())}")
    values = _read_toml(path.read_text(encoding="utf-8"), f"preset '{name}'")
    base = values.pop("base", None)
    return _merge(preset_dict(base), values) if base else values


def load_config(preset: str | None = None, config_file: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> DistillConfig:
    """preset (default 'synthetic' when no file is given) <- TOML file <- `key=value` overrides."""
    if preset and config_file:
        raise ConfigError("give either --preset or --config, not both")
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise InputPathError(f"config file '{path}' does not exist")
        values = _read_toml(path.read_text(encoding="utf-8"), f"config '{path}'")
        base = values.pop("base", None)
        if base:
            values = _merge(preset_dict(base), values)
    else:
        values = preset_dict(preset or "synthetic")
    for text in overrides:
        values = _merge(values, parse_override(text))
    return config_from_dict(values)


def replace_config(cfg: DistillConfig, overrides: list[str] | tuple[str, ...] | dict[str, Any]) -> DistillConfig:
    """A copy of `cfg` with overrides (`key=value` strings, or a nested dict) applied and validated."""
    values = config_to_dict(cfg)
    if isinstance(overrides, dict):
        values = _merge(values, overrides)
    else:
        for text in overrides:
            values = _merge(values, parse_override(text))
    return config_from_dict(values)


# --------------------------------------------------------------------------------------------- validation
def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _check_numbers(values: dict[str, Any], prefix: str) -> None:
    """No NaN or infinity anywhere in a config: they pass every `<` check and poison training silently."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_numbers(value, name + ".")
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"config key '{name}' = {v}; give a finite number")


def validate(cfg: DistillConfig) -> None:
    """Value checks that need no data or models; raise one ConfigError line."""
    _check_numbers(config_to_dict(cfg), "")
    if not 0 <= cfg.seed <= 2**32 - 1:
        raise ConfigError(f"seed must be in [0, {2**32 - 1}], got {cfg.seed}")
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"config key '{key}' = {value!r}; choose one of: {', '.join(choices)}")
    if cfg.iters < 1:
        raise ConfigError("iters must be >= 1")
    if cfg.data.batch_size < 1:
        raise ConfigError("data.batch_size must be >= 1")
    if min(cfg.data.crop) < 32:
        raise ConfigError(f"data.crop {cfg.data.crop} is too small (>= 32x32)")
    mt = cfg.duda.multi_teacher
    for kind in mt.teachers:
        if kind not in TEACHER_KINDS:
            raise ConfigError(f"duda.multi_teacher.teachers has '{kind}'; choose from: {', '.join(TEACHER_KINDS)}")
    if mt.num_large < 1:
        raise ConfigError("duda.multi_teacher.num_large must be >= 1")
    if mt.fusion == "mean" and mt.weights and len(mt.weights) != len(mt.teachers):
        raise ConfigError(f"duda.multi_teacher.weights has {len(mt.weights)} values for {len(mt.teachers)} teachers")
    if cfg.method == "fixed_teacher" and not cfg.models.teacher_init:
        raise ConfigError("method fixed_teacher needs models.teacher_init = [\"teacher.safetensors\"]")
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


def to_toml(cfg: DistillConfig) -> str:
    """Serialise a config as TOML (for `config.toml` next to outputs and `--config` round trips)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(v)  # pragma: no cover

    def emit(values: dict[str, Any], prefix: str) -> None:
        plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        if prefix and plain:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {scalar(v)}" for k, v in plain.items())
        for k, v in tables.items():
            emit(v, f"{prefix}.{k}" if prefix else k)

    emit(config_to_dict(cfg), "")
    return "\n".join(lines).lstrip("\n") + "\n"
