"""End-to-end `edgeseg distill` on tiny networks: outputs and report, shared initialisation, exact resume,
and user errors reported as one line before anything trains."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import edgeseg.uda.trainer as trainer_module
from edgeseg.checkpoint import (
    load_model,
    load_state,
    model_meta,
    read_checkpoint_meta,
    save_model,
    save_state,
)
from edgeseg.cli import main
from edgeseg.errors import ConfigError, InputPathError, ModelMismatchError
from edgeseg.models.registry import create_model
from edgeseg.uda.api import run_distill
from edgeseg.uda.config import to_toml
from edgeseg.uda.state import load_train_state


@pytest.fixture(scope="module")
def data_root(tiny_uda: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_uda.render_tiny(tmp_path_factory.mktemp("synth"))


def test_cli_run_writes_student_report_and_baseline(
    tiny_uda: SimpleNamespace, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_uda.tiny_config(
        data_root,
        "iters=2",
        "train.source_only_baseline=true",
        "train.save_teacher=true",
        "duda.inconsistency.finetune_fraction=0.5",
    )
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(cfg))
    out = tmp_path / "run"
    assert main(["distill", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "source-only" in printed and "adapted student" in printed
    report = json.loads((out / "report.json").read_text())
    for key in ("source_only", "student", "teacher"):
        assert 0.0 <= report[key]["target_miou"] <= 1.0
    assert report["wall_time_s"] > 0 and report["method"] == "duda"
    assert report["gain_over_source_only"] == pytest.approx(
        report["student"]["target_miou"] - report["source_only"]["target_miou"]
    )
    student = load_model(out / "student.safetensors")
    assert student.arch == "segformer_tiny" and student.num_classes == 19
    prov = read_checkpoint_meta(out / "student.safetensors")["provenance"]
    assert prov["method"] == "duda" and prov["role"] == "student" and prov["target"] == "synthetic/city"
    assert (out / "teacher.safetensors").is_file() and (out / "source_only" / "student.safetensors").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(line.get("event") == "inconsistency" for line in lines)
    assert lines[-1]["event"] == "final"
    # the same --out again without --resume refuses rather than overwriting the run
    assert main(["distill", "--config", str(config), "--out", str(out)]) != 0
    assert "--resume" in capsys.readouterr().err


def test_students_share_an_initialisation(tiny_uda: SimpleNamespace, data_root: Path, tmp_path: Path) -> None:
    init = tmp_path / "init.safetensors"
    torch.manual_seed(5)
    save_model(create_model("segformer_tiny", num_classes=19), init)
    init_state, _ = load_state(init)
    cfg = tiny_uda.tiny_config(
        data_root, "iters=1", f"models.small_init={init}", "method=self_training", "optim.lr=0"
    )
    result = run_distill(cfg, tmp_path / "a", log=lambda m: None)
    state, meta = load_state(result.student_path)
    for key, value in init_state.items():  # lr 0: the student is still exactly the shared init
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(state[key], value), key
    assert meta["provenance"]["small_init"] == str(init)
    # an encoder-only checkpoint (e.g. ImageNet MiT weights) initialises just the encoder
    encoder = tmp_path / "encoder.safetensors"
    model = create_model("segformer_tiny", num_classes=19)
    save_state(
        {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()},
        encoder,
        model_meta(model, kind="encoder"),
    )  # the layout `edgeseg convert mit_b0.pth` writes
    cfg = tiny_uda.tiny_config(
        data_root, "iters=1", f"models.small_init={encoder}", "method=source_only", "optim.lr=0"
    )
    state, _ = load_state(run_distill(cfg, tmp_path / "b", log=lambda m: None).student_path)
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(state[f"encoder.{key}"], value)


def test_resume_continues_exactly(
    tiny_uda: SimpleNamespace, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = ("iters=5", "train.ckpt_every=2", "duda.inconsistency.finetune_fraction=0.4")
    cfg = tiny_uda.tiny_config(data_root, *overrides)
    full = run_distill(cfg, tmp_path / "full", log=lambda m: None)

    real_step = trainer_module.distill_step

    def interrupted(cfg_, nets, trainables, batch, ctx):
        if ctx.step == 3:  # after the checkpoint at step 2 and the inconsistency measurement at step 3
            raise KeyboardInterrupt
        return real_step(cfg_, nets, trainables, batch, ctx)

    monkeypatch.setattr(trainer_module, "distill_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_distill(cfg, tmp_path / "resumed", log=lambda m: None)
    assert load_train_state(tmp_path / "resumed" / "checkpoint.safetensors").step == 2
    monkeypatch.setattr(trainer_module, "distill_step", real_step)
    resumed = run_distill(cfg, tmp_path / "resumed", resume=True, log=lambda m: None)

    a = load_train_state(tmp_path / "full" / "checkpoint.safetensors").nets
    b = load_train_state(tmp_path / "resumed" / "checkpoint.safetensors").nets
    assert set(a) == set(b) and any(k.startswith("teachers.") for k in a) and "class_weights" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.report["student"]["target_miou"] == full.report["student"]["target_miou"]
    steps = [json.loads(s)["step"] for s in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # the log was trimmed to the checkpoint before continuing
    with pytest.raises(ConfigError, match="differs"):
        run_distill(tiny_uda.tiny_config(data_root, *overrides, "seed=1"), tmp_path / "resumed", resume=True)


def test_user_errors_come_before_training(
    tiny_uda: SimpleNamespace, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputPathError, match="data.target_root"):
        run_distill(
            tiny_uda.tiny_config(data_root, f"data.target_root={tmp_path / 'nowhere'}"), tmp_path / "x"
        )
    wrong = tmp_path / "teacher7.safetensors"
    save_model(create_model("segformer_tiny", num_classes=7), wrong)
    with pytest.raises(ModelMismatchError, match="7 classes"):
        run_distill(
            tiny_uda.tiny_config(data_root, "method=fixed_teacher", f'models.teacher_init=["{wrong}"]'),
            tmp_path / "y",
        )
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="fp16"):
            run_distill(tiny_uda.tiny_config(data_root, "train.amp=fp16"), tmp_path / "z")
    assert not any((tmp_path / d).exists() for d in "xyz")  # nothing was written
    for argv in (
        ["distill", "--set", "duda.nonsense=1"],
        ["distill", "--set", f"data.source_root={tmp_path / 'no'}"],
    ):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1


def test_pl_precision_is_logged_without_changing_training(
    tiny_uda: SimpleNamespace, data_root: Path, tmp_path: Path
) -> None:
    """train.pl_precision reads target labels for the log only: the trained weights are bit-identical."""
    runs = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        run_distill(
            tiny_uda.tiny_config(
                data_root,
                "iters=3",
                "train.log_every=1",
                f"train.pl_precision={flag}",
                "uda.pseudo_threshold=0.0",
            ),
            out,
            log=lambda m: None,
        )
        runs[flag] = out
    a = load_model(runs["false"] / "student.safetensors").state_dict()
    b = load_model(runs["true"] / "student.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(line) for line in (runs["true"] / "metrics.jsonl").read_text().splitlines()]
    values = [line["student.pl_precision"] for line in lines if "student.pl_precision" in line]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert any("aux0.pl_precision" in line for line in lines)
    assert not any(
        "pl_precision" in k for k in json.loads((runs["false"] / "metrics.jsonl").read_text().splitlines()[0])
    )


def test_pl_precision_counts_confident_labelled_pixels_only() -> None:
    from edgeseg.uda.duda import pl_precision

    probs = torch.zeros(1, 3, 2, 2)
    probs[0, 0] = torch.tensor([[0.99, 0.99], [0.5, 0.99]])  # three confident pixels predict class 0
    probs[0, 1] = 1 - probs[0, 0]
    labels = torch.tensor([[[0, 1], [1, 255]]])  # one right, one wrong, one ignored
    assert pl_precision(probs, labels, 0.9, (2, 2)) == pytest.approx(0.5)
