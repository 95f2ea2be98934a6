"""Config: presets, TOML files, `--set` overrides, unknown keys and bad values as one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeseg.errors import ConfigError, InputPathError
from edgeseg.uda.config import (
    config_from_dict,
    config_to_dict,
    list_presets,
    load_config,
    parse_override,
    replace_config,
    to_toml,
)

PAPER_PRESETS = ("gta2cityscapes", "synthia2cityscapes", "cityscapes2acdc", "cityscapes2darkzurich")


def test_every_shipped_preset_loads_and_validates() -> None:
    names = list_presets()
    assert "synthetic" in names
    for name in PAPER_PRESETS:
        assert name in names
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_paper_presets_carry_the_paper_settings() -> None:
    for name in PAPER_PRESETS:
        cfg = load_config(name)
        assert (cfg.models.large, cfg.models.small) == ("daformer_b5", "daformer_b0")
        assert (cfg.optim.lr, cfg.optim.head_lr_mult, cfg.optim.weight_decay) == (6e-5, 10.0, 0.01)
        assert cfg.optim.warmup_iters == 1500 and cfg.iters == 40000
        assert cfg.data.crop == (512, 512) and cfg.data.batch_size == 2
        assert cfg.uda.ema_alpha == 0.999 and cfg.uda.pseudo_threshold == 0.968
        assert cfg.uda.loss_resolution == "image"
    gta = load_config("gta2cityscapes")
    assert gta.data.rcs_temperature == 0.01 and gta.uda.fd_weight == 0.005
    assert (gta.uda.ignore_top, gta.uda.ignore_bottom) == (15, 120)


def test_defaults_and_overrides() -> None:
    cfg = load_config()
    assert cfg.name == "synthetic" and cfg.method == "duda"
    cfg = load_config(
        overrides=[
            "iters=7",
            "duda.gradual.schedule=cosine",
            "data.crop=[64, 96]",
            "models.small_init=/some/path/student.safetensors",
            "optim.lr=1",
        ]
    )
    assert cfg.iters == 7 and cfg.duda.gradual.schedule == "cosine" and cfg.data.crop == (64, 96)
    assert cfg.models.small_init == "/some/path/student.safetensors"
    assert isinstance(cfg.optim.lr, float)  # ints are accepted for floats


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("iters.x=3", "expects an integer"),
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("duda.gradual.shape=linear", "unknown config key 'duda.gradual.shape'"),
        ("duda.kd=mse", "choose one of"),
        ("iters=many", "expects an integer"),
        ("data.crop=[64]", "needs 2 values"),
        ('duda.multi_teacher.teachers=["large_ema", "oracle"]', "duda.multi_teacher.teachers"),
        ("method=fixed_teacher", "teacher_init"),
        ("iters", "not key=value"),
    ],
)
def test_bad_overrides_are_one_line_config_errors(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_override_nests_and_types() -> None:
    assert parse_override("a.b.c=1.5") == {"a": {"b": {"c": 1.5}}}
    assert parse_override("x=true") == {"x": True}
    assert parse_override("p=runs/a b") == {"p": "runs/a b"}


def test_toml_round_trip_and_config_file(tmp_path: Path) -> None:
    cfg = load_config(overrides=["iters=11", 'duda.multi_teacher.teachers=["large_ema"]'])
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    again = load_config(config_file=path)
    assert again == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    (tmp_path / "inherit.toml").write_text('base = "synthetic"\niters = 5\n[duda]\nkd = "kl"\n')
    inherited = load_config(config_file=tmp_path / "inherit.toml")
    assert inherited.iters == 5 and inherited.duda.kd == "kl" and inherited.data.crop == cfg.data.crop
    with pytest.raises(InputPathError):
        load_config(config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="nope")
    assert replace_config(cfg, ["seed=3"]).seed == 3


def test_choices_live_in_literal_types_and_unknown_keys_get_a_suggestion() -> None:
    from edgeseg.config_engine import choices_of, field_types
    from edgeseg.uda.config import DUDAConfig

    assert choices_of(field_types(DUDAConfig)["kl_view"]) == ("clean_target", "same_input")
    with pytest.raises(ConfigError, match="choose one of: ce, kl, ce\\+kl"):
        load_config("synthetic", overrides=["duda.kd=kll"])
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        load_config("synthetic", overrides=["duda.temprature=2"])
    with pytest.raises(ConfigError, match="multi_teacher.teachers"):
        load_config("synthetic", overrides=['duda.multi_teacher.teachers=["large_ema", "tiny"]'])
