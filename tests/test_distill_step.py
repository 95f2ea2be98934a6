"""One full DUDA step on tiny networks: every loss finite, gradients reach the students only, teachers move
only through EMA; and the baselines' steps produce exactly their losses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from edgeseg.uda.duda import Batch, StepContext, Trainables, distill_step
from edgeseg.uda.ema import ema_alpha, ema_update
from edgeseg.uda.nets import WithFeatures, build_networks
from edgeseg.uda.trainer import param_groups

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@pytest.fixture(scope="module")
def data_root(tiny_uda: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_uda.render_tiny(tmp_path_factory.mktemp("synth"))


def _batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 19, (2, 64, 128), generator=g)
    labels[:, :20] = 10  # a big "sky" region and a "road" region so ClassMix has whole classes
    labels[:, 40:] = 0
    return Batch(
        torch.randn(2, 3, 64, 128, generator=g),
        labels,
        torch.randn(2, 3, 64, 128, generator=g),
        torch.randint(0, 19, (2, 64, 128), generator=g),
    )


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_full_duda_step(tiny_uda: SimpleNamespace, data_root: Path) -> None:
    torch.set_num_threads(1)
    cfg = tiny_uda.tiny_config(
        data_root,
        "uda.mic.enabled=true",
        "uda.mic.block_size=16",
        "uda.fd_weight=0.005",
        "uda.fd_classes=[0, 10]",
        "uda.pseudo_threshold=0.0",
        "uda.ignore_top=4",
        'duda.multi_teacher.teachers=["large_ema", "small_ema"]',
        "duda.multi_teacher.num_large=2",
        "duda.multi_teacher.fusion=agree",
        "uda.loss_resolution=image",
    )
    nets = build_networks(cfg)
    assert len(nets.aux) == 2 and len(nets.teachers) == 2 and nets.student_ema is not None
    trainables = Trainables(WithFeatures(nets.student), [WithFeatures(a) for a in nets.aux])
    optimizer = torch.optim.AdamW(
        param_groups([("student", nets.student), ("aux0", nets.aux[0]), ("aux1", nets.aux[1])], cfg), lr=1e-3
    )
    frozen = {"teachers": _state(nets.teachers), "student_ema": _state(nets.student_ema)}
    student_before = _state(nets.student)
    ctx = StepContext(
        step=3, finetune_start=cfg.iters, generator=torch.Generator().manual_seed(0), mean=MEAN, std=STD
    )
    out = distill_step(cfg, nets, trainables, _batch(), ctx)
    expected = {
        "aux0.src",
        "aux0.mix",
        "aux0.mic",
        "aux0.fd",
        "aux1.src",
        "aux1.mix",
        "aux1.mic",
        "aux1.fd",
        "student.src",
        "student.pl",
        "student.kl",
    }
    assert set(out.losses) == expected
    for name, value in out.losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    assert out.losses["student.pl"] > 0 and out.losses["student.kl"] > 0
    assert 0.0 <= out.logs["teachers.agree"] <= 1.0
    assert set(out.trained) == {"student", "aux0", "aux1"}
    optimizer.zero_grad(set_to_none=True)
    sum(out.losses.values()).backward()
    # gradients reach both kinds of students, never a teacher
    assert all(p.grad is not None for p in nets.student.parameters())
    assert all(p.grad is not None for p in nets.aux[0].parameters())
    for frozen_module in (nets.teachers, nets.student_ema, nets.fd_reference):
        assert all(p.grad is None and not p.requires_grad for p in frozen_module.parameters())
    optimizer.step()
    assert any(not torch.equal(v, student_before[k]) for k, v in nets.student.state_dict().items())
    for key, value in nets.teachers.state_dict().items():  # the optimizer step left the teachers alone
        assert torch.equal(value, frozen["teachers"][key])
    ema_update(nets.teachers[0], nets.aux[0], ema_alpha(4, cfg.uda.ema_alpha))
    moved = [
        k
        for k, v in nets.teachers[0].state_dict().items()
        if not torch.equal(v, frozen["teachers"]["0." + k])
    ]
    assert moved  # ... and moved only through the EMA update


def test_finetune_phase_uses_class_weights_and_freezes_large_pair(
    tiny_uda: SimpleNamespace, data_root: Path
) -> None:
    torch.set_num_threads(1)
    cfg = tiny_uda.tiny_config(data_root, "duda.multi_teacher.enabled=false", "duda.inconsistency.beta=3.0")
    nets = build_networks(cfg)
    trainables = Trainables(WithFeatures(nets.student), [WithFeatures(a) for a in nets.aux])
    batch = _batch(1)

    def run(weights: torch.Tensor) -> dict[str, float]:
        nets.class_weights.copy_(weights)
        ctx = StepContext(
            step=3, finetune_start=2, generator=torch.Generator().manual_seed(0), mean=MEAN, std=STD
        )
        torch.manual_seed(0)
        out = distill_step(cfg, nets, trainables, batch, ctx)
        assert out.trained == ("student",)  # the large pair is frozen while fine-tuning (default)
        assert not any(k.startswith("aux") for k in out.losses)
        assert out.logs["student.lambda"] == 1.0
        return {k: float(v.detach()) for k, v in out.losses.items()}

    plain = run(torch.ones(19))
    weighted = run(torch.full((19,), 2.0))
    assert weighted["student.src"] == pytest.approx(plain["student.src"])  # apply_to = target
    assert weighted["student.pl"] == pytest.approx(2 * plain["student.pl"], rel=1e-4)
    assert weighted["student.kl"] == pytest.approx(2 * plain["student.kl"], rel=1e-4)


def test_gradual_distillation_scales_teacher_losses(tiny_uda: SimpleNamespace, data_root: Path) -> None:
    torch.set_num_threads(1)
    cfg = tiny_uda.tiny_config(
        data_root, "iters=100", "duda.inconsistency.enabled=false", "duda.gradual.ramp_fraction=0.5"
    )
    nets = build_networks(cfg)
    trainables = Trainables(WithFeatures(nets.student), [WithFeatures(a) for a in nets.aux])
    out = distill_step(
        cfg, nets, trainables, _batch(2), StepContext(0, 100, torch.Generator().manual_seed(0), MEAN, STD)
    )
    assert out.logs["student.lambda"] == 0.0
    assert out.losses["student.pl"].detach().item() == 0.0 and out.losses["student.kl"].detach().item() == 0.0
    out = distill_step(
        cfg, nets, trainables, _batch(2), StepContext(25, 100, torch.Generator().manual_seed(0), MEAN, STD)
    )
    assert out.logs["student.lambda"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "method, losses",
    [
        ("source_only", {"student.src"}),
        ("oracle", {"student.src"}),
        ("self_training", {"student.src", "student.pl"}),
    ],
)
def test_baseline_steps(tiny_uda: SimpleNamespace, data_root: Path, method: str, losses: set[str]) -> None:
    torch.set_num_threads(1)
    cfg = tiny_uda.tiny_config(data_root, f"method={method}")
    nets = build_networks(cfg)
    assert not len(nets.aux) and (nets.student_ema is not None) == (method == "self_training")
    trainables = Trainables(WithFeatures(nets.student), [])
    out = distill_step(
        cfg, nets, trainables, _batch(3), StepContext(1, 4, torch.Generator().manual_seed(0), MEAN, STD)
    )
    assert set(out.losses) == losses
    assert all(torch.isfinite(v) for v in out.losses.values())


def test_bf16_autocast_step_is_finite(tiny_uda: SimpleNamespace, data_root: Path) -> None:
    torch.set_num_threads(1)
    cfg = tiny_uda.tiny_config(data_root, "train.amp=bf16")
    nets = build_networks(cfg)
    trainables = Trainables(WithFeatures(nets.student), [WithFeatures(a) for a in nets.aux])
    ctx = StepContext(
        1,
        4,
        torch.Generator().manual_seed(0),
        MEAN,
        STD,
        autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    )
    out = distill_step(cfg, nets, trainables, _batch(4), ctx)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.losses.values())
    sum(out.losses.values()).backward()


def test_kl_same_input_view_changes_only_the_kl_term(tiny_uda: SimpleNamespace, data_root: Path) -> None:
    """duda.kl_view = same_input: the teachers see the student's mixed input; CE terms are untouched."""
    torch.set_num_threads(1)
    out = {}
    for view in ("clean_target", "same_input"):
        cfg = tiny_uda.tiny_config(data_root, "uda.pseudo_threshold=0.0", f"duda.kl_view={view}")
        torch.manual_seed(0)
        nets = build_networks(cfg)
        trainables = Trainables(WithFeatures(nets.student), [WithFeatures(a) for a in nets.aux])
        ctx = StepContext(
            step=3, finetune_start=cfg.iters, generator=torch.Generator().manual_seed(0), mean=MEAN, std=STD
        )
        out[view] = distill_step(cfg, nets, trainables, _batch(), ctx).losses
    a, b = out["clean_target"], out["same_input"]
    assert torch.isfinite(b["student.kl"]) and b["student.kl"] > 0
    assert not torch.allclose(a["student.kl"], b["student.kl"])
    for key in ("student.src", "student.pl", "aux0.src", "aux0.mix"):
        assert torch.allclose(a[key], b[key]), key
