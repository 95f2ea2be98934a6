"""The networks of one adaptation run, built from the config and local initial weights.

    student       small, trainable: the deployed model (every method)
    aux[i]        large auxiliary students, trainable (method duda; i < num_large)
    teachers[i]   EMA of aux[i]: the large teachers that make pseudo-labels
    student_ema   EMA of the student (self_training's teacher; an optional extra DUDA teacher)
    fixed[j]      frozen, already adapted teachers from files (method fixed_teacher; optional DUDA teacher)
    fd_reference  frozen copy of the initial large encoder (feature-distance regularisation)

Initial weights come from edgeseg checkpoints: kind "segmentor" (whole model; architecture and class
count must match) or kind "encoder" (e.g. ImageNet MiT weights from `edgeseg convert`: encoder only).
`check_init_files` validates every file from its header alone, before data is read or anything trains.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgeseg.checkpoint import load_model, load_state, load_state_strict, read_checkpoint_meta
from edgeseg.errors import CheckpointError, InputPathError, ModelMismatchError
from edgeseg.models.registry import create_model, model_spec
from edgeseg.uda.config import DistillConfig
from edgeseg.uda.ema import make_ema_copy


class DistillNets(nn.Module):
    def __init__(
        self,
        student: nn.Module,
        aux: list[nn.Module],
        student_ema: nn.Module | None,
        fixed: list[nn.Module],
        fd_reference: nn.Module | None,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.student = student
        self.aux = nn.ModuleList(aux)
        self.teachers = nn.ModuleList(make_ema_copy(a) for a in aux)
        self.student_ema = student_ema
        self.fixed = nn.ModuleList(fixed)
        self.fd_reference = fd_reference
        # Inconsistency-based class weights of the fine-tuning phase (a buffer: saved with checkpoints).
        self.register_buffer("class_weights", torch.ones(num_classes))
        for frozen in (self.teachers, self.fixed, self.fd_reference, self.student_ema):
            if frozen is not None:
                frozen.requires_grad_(False)


def uses_student_ema(cfg: DistillConfig) -> bool:
    mt = cfg.duda.multi_teacher
    return cfg.method == "self_training" or (
        cfg.method == "duda" and mt.enabled and "small_ema" in mt.teachers
    )


def uses_fixed(cfg: DistillConfig) -> bool:
    mt = cfg.duda.multi_teacher
    return cfg.method == "fixed_teacher" or (cfg.method == "duda" and mt.enabled and "fixed" in mt.teachers)


def num_large(cfg: DistillConfig) -> int:
    if cfg.method != "duda":
        return 0
    mt = cfg.duda.multi_teacher
    return mt.num_large if mt.enabled else 1


def _check_file(path: str, what: str, arch: str | None, num_classes: int) -> dict:
    from edgeseg.weights import resolve_weights

    p = resolve_weights(path)  # builtin:<name> -> the shipped file, sha256-verified (one-line error if not)
    if not p.is_file():
        raise InputPathError(
            f"{what} '{path}' does not exist; give an edgeseg .safetensors checkpoint "
            "(`edgeseg convert` imports foreign weights)"
        )
    meta = read_checkpoint_meta(p)
    from edgeseg.checkpoint import check_weights

    check_weights(load_state(p)[0], str(path))  # NaN/Inf or integer weights: refused before any training
    if meta["kind"] == "segmentor" and int(meta["num_classes"]) != num_classes:
        raise ModelMismatchError(
            f"{what} '{path}' predicts {meta['num_classes']} classes but the run trains "
            f"{num_classes} (models.num_classes); use a {num_classes}-class checkpoint"
        )
    if arch is not None and meta["arch"] != arch:
        try:
            same = (
                model_spec(meta["arch"]).embed_dims == model_spec(arch).embed_dims
                and model_spec(meta["arch"]).depths == model_spec(arch).depths
            )
        except Exception:  # noqa: BLE001 - unknown arch names: treat as different
            same = False
        if not (meta["kind"] == "encoder" and same):
            raise ModelMismatchError(
                f"{what} '{path}' holds a {meta['arch']} but the run's model is {arch}; "
                f"set models.{'large' if 'large' in what else 'small'} accordingly"
            )
    return meta


def check_init_files(cfg: DistillConfig) -> None:
    """Validate every initial-weights file named by the config (existence, kind, class count, arch)."""
    m = cfg.models
    if m.small_init:
        _check_file(m.small_init, "models.small_init", m.small, m.num_classes)
    if m.large_init and num_large(cfg) > 0:
        _check_file(m.large_init, "models.large_init", m.large, m.num_classes)
    if uses_fixed(cfg):
        for path in m.teacher_init:
            meta = _check_file(path, "models.teacher_init", None, m.num_classes)
            if meta["kind"] != "segmentor":
                raise CheckpointError(
                    f"models.teacher_init '{path}' holds {meta['kind']} weights only; a fixed "
                    "teacher must be a whole adapted segmentor"
                )


def init_model(arch: str, num_classes: int, path: str, seed: int) -> nn.Module:
    """A model with deterministic random init (seeded), then the checkpoint's weights if given."""
    state, meta = load_state(path) if path else ({}, {})
    # e.g. Hugging Face imports record layer_norm_eps=1e-5: build exactly the network the weights came from
    overrides = dict(meta.get("arch_overrides") or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(arch, num_classes=num_classes, **overrides)
    if path:
        if meta["kind"] == "encoder":
            load_state_strict(
                model.encoder,
                state,
                path,
                prefix="encoder." if any(k.startswith("encoder.") for k in state) else "",
            )
        else:
            load_state_strict(model, state, path)
        # an encoder's classes are its pretraining task's (e.g. the generic corpus'), not the run's
        copied = ("mean", "std") if meta["kind"] == "encoder" else ("classes", "palette", "mean", "std")
        model.meta = {k: v for k, v in meta.items() if k in copied}
        model.meta["provenance"] = {"init": str(path), "init_kind": meta["kind"]}
    return model


def build_networks(cfg: DistillConfig) -> DistillNets:
    """All networks for `cfg` (on CPU; the trainer moves them). Seeds make every random init reproducible."""
    m = cfg.models
    student = init_model(m.small, m.num_classes, m.small_init, cfg.seed * 1000 + 1)
    aux = [
        init_model(m.large, m.num_classes, m.large_init, cfg.seed * 1000 + 2 + i)
        for i in range(num_large(cfg))
    ]
    student_ema = make_ema_copy(student) if uses_student_ema(cfg) else None
    fixed = [load_model(p) for p in m.teacher_init] if uses_fixed(cfg) else []
    fd_ref = None
    if aux and cfg.uda.fd_weight > 0:
        fd_ref = copy.deepcopy(aux[0].encoder).eval()
    return DistillNets(student, aux, student_ema, fixed, fd_ref, m.num_classes)


class WithFeatures(nn.Module):
    """forward(x, features=True) -> (logits, encoder features): lets DDP see the feature path as well."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, features: bool = False):
        if features:
            return self.model.forward_with_features(x)
        return self.model(x)


def set_teacher_mode(model: nn.Module, bn_mode: str) -> None:
    """Eval mode (no dropout / drop-path); with bn_mode 'batch', BatchNorm normalises with the current
    batch's statistics while leaving the EMA'd running buffers untouched (momentum 0)."""
    model.eval()
    if bn_mode == "batch":
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.train()
                mod.momentum = 0.0
