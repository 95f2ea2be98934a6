"""`edgeseg pretrain`: the generic corpus (no benchmark leakage), exact resume, report and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeseg.data.corpora import CORPORA
from edgeseg.data.synth_generic import corpus_rng
from edgeseg.errors import ConfigError
from edgeseg.pretrain import PretrainConfig, lr_at, run_pretrain


@pytest.mark.parametrize("name", list(CORPORA))
def test_corpus_is_deterministic_and_labels_in_range(name: str) -> None:
    spec = CORPORA[name]
    module = spec.load()
    render = getattr(module, spec.render)
    a_img, a_lab = render(corpus_rng(0, 5), (64, 128))
    b_img, b_lab = render(corpus_rng(0, 5), (64, 128))
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert a_img.shape == (64, 128, 3) and a_img.dtype == np.uint8
    assert int(a_lab.max()) < module.NUM_CLASSES and len(module.class_names()) == module.NUM_CLASSES
    c_img, _ = render(corpus_rng(1, 5), (64, 128))
    assert not np.array_equal(a_img, c_img)  # the held-out stream differs
    seen = set()
    for i in range(60):
        seen |= set(np.unique(render(corpus_rng(0, i), (64, 128))[1]).tolist())
    assert len(seen) >= 0.8 * module.NUM_CLASSES  # the classes really occur


STUFF = ("road", "sidewalk", "building", "wall", "fence", "vegetation", "terrain", "sky")


@pytest.mark.parametrize("name", list(CORPORA))
def test_corpus_shares_only_declared_object_categories_with_the_benchmark(name: str) -> None:
    """A corpus may know object categories, as ImageNet does (`BENCHMARK_CATEGORIES`, declared), but never a
    street-scene surface class (road, building, sky, ...), and undeclared benchmark names never appear."""
    from edgeseg.data.labels import CLASSES

    module = CORPORA[name].load()
    declared = set(getattr(module, "BENCHMARK_CATEGORIES", ()))
    assert not declared & set(STUFF)
    names = module.class_names()
    words = {w for n in names for part in n.split() for w in part.split("-")} | set(names)
    assert {c for c in CLASSES if c in words} <= declared


def test_things_corpus_gives_no_category_a_colour() -> None:
    """`things`: a category's colour is uniform over RGB (mean near mid-grey, wide spread), not a domain palette
    (the source's cars are saturated anchors, the city's grey ones)."""
    from edgeseg.data.synth_things import CATEGORIES, NUM_CLASSES, render_things

    means: dict[int, list[np.ndarray]] = {c: [] for c in range(1, NUM_CLASSES)}
    for i in range(80):
        img, label = render_things(corpus_rng(0, i), (64, 128))
        for c in np.unique(label):
            if c > 0 and (label == c).sum() >= 20:
                means[int(c)].append(img[label == c].mean(0))
    for c in (CATEGORIES.index("car"), CATEGORIES.index("person"), CATEGORIES.index("tree")):
        spread = np.std(np.array(means[c]), axis=0)
        centre = np.mean(np.array(means[c]), axis=0)
        assert len(means[c]) >= 10 and (spread > 25).all(), (CATEGORIES[c], spread)
        assert ((centre > 60) & (centre < 190)).all(), (CATEGORIES[c], centre)


def test_scenes_corpus_has_ground_below_the_horizon() -> None:
    """The layout the `scenes` corpus exists for: upper field on top, ground (or what stands on it) below."""
    from edgeseg.data.synth_scenes import GROUND, NUM_KINDS, UPPER, render_scene

    for i in range(10):
        _, label = render_scene(corpus_rng(0, i), (64, 128))
        kinds = label % NUM_KINDS
        assert (kinds[0] == UPPER).mean() > 0.5 or (
            kinds[0] > GROUND
        ).mean() > 0.3  # top row: upper or objects
        assert not (kinds[-1] == UPPER).any()  # the bottom row is never the upper field


def test_unknown_corpus_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="choose one of shapes, scenes, things"):
        PretrainConfig(arch="segformer_tiny", corpus="imagenet")


def test_lr_schedule_warms_up_then_decays_to_one_percent() -> None:
    cfg = PretrainConfig(arch="segformer_tiny", iters=100, warmup_iters=10, lr=1e-3)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) < 2e-4 and lr_at(99, cfg) >= 1e-5


def test_photometric_augment_is_seeded_and_only_changes_appearance() -> None:
    import torch

    from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD
    from edgeseg.uda.mixing import photometric_augment

    x = torch.randn(6, 3, 32, 64)
    a = photometric_augment(x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(3))
    b = photometric_augment(x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(3))
    c = photometric_augment(x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - x).abs().mean()) > 0.01
    gray = photometric_augment(
        x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(0), jitter_p=0, gray_p=1, blur_p=0
    )
    rgb = gray * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    assert torch.allclose(rgb[:, 0], rgb[:, 1], atol=1e-3) and torch.allclose(rgb[:, 1], rgb[:, 2], atol=1e-3)
    with pytest.raises(ConfigError, match="--augment"):
        PretrainConfig(arch="segformer_tiny", augment="colour")


def _cfg(**kw) -> PretrainConfig:
    base = dict(
        arch="segformer_tiny",
        iters=6,
        batch_size=2,
        size=(32, 64),
        warmup_iters=2,
        ckpt_every=3,
        log_every=1,
        eval_every=0,
        eval_images=4,
    )
    return PretrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_resume_continues_bit_for_bit(tmp_path: Path) -> None:
    from edgeseg.checkpoint import load_state

    straight = run_pretrain(_cfg(augment="photometric"), tmp_path / "a", log=lambda m: None)

    class Stop(Exception):
        pass

    def crash(done: int, total: int, status: str) -> None:
        if done == 4:  # after the step-3 checkpoint: steps 4.. must be redone identically
            raise Stop

    with pytest.raises(Stop):
        run_pretrain(_cfg(augment="photometric"), tmp_path / "b", log=lambda m: None, progress=crash)
    with pytest.raises(ConfigError, match="--resume"):
        run_pretrain(_cfg(augment="photometric"), tmp_path / "b", log=lambda m: None)
    with pytest.raises(ConfigError, match="other settings"):
        run_pretrain(_cfg(augment="none"), tmp_path / "b", resume=True, log=lambda m: None)
    resumed = run_pretrain(_cfg(augment="photometric"), tmp_path / "b", resume=True, log=lambda m: None)
    a, meta = load_state(straight.encoder_path)
    b, _ = load_state(resumed.encoder_path)
    assert meta["kind"] == "encoder" and set(a) == set(b)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert resumed.report["steps_run"] == 3 and straight.report["steps_run"] == 6
    import json

    logged = [
        json.loads(ln)["step"]
        for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
        if "loss" in ln
    ]
    assert logged == list(
        range(1, 7)
    )  # the line logged after the checkpoint, before the crash, is not doubled
    assert 0.0 <= resumed.report["heldout"]["miou"] <= 1.0 and resumed.report["machine"]["cores"] >= 1


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        _cfg(size=(40, 64))
    with pytest.raises(ConfigError, match="nothing_like_this"):
        _cfg(arch="nothing_like_this")
    with pytest.raises(ConfigError, match="holds no"):
        run_pretrain(_cfg(), tmp_path / "none", resume=True, log=lambda m: None)


def test_cli_pretrain_writes_report(tmp_path: Path) -> None:
    import json

    from edgeseg.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "pretrain",
            "--arch",
            "segformer_tiny",
            "--iters",
            "2",
            "--batch-size",
            "1",
            "--size",
            "64x64",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["command"].startswith("edgeseg pretrain --arch segformer_tiny")
    assert (out / "encoder.safetensors").is_file() and report["wall_time_s"] > 0
    assert main(["pretrain", "--arch", "segformer_tiny", "--iters", "2", "--out", str(out)]) != 0
