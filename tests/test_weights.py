"""Shipped initial weights: the manifest matches the files, they load into their architectures, tampering
is a one-line error naming the regenerating command, and the synthetic presets resolve them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edgeseg.errors import CheckpointError, ConfigError
from edgeseg.weights import (
    SHIPPED_DIR,
    dequantise_state,
    pack_run,
    quantise_state,
    read_manifest,
    resolve_weights,
    verify_all,
)

SHIPPED = read_manifest()["weights"]


def test_manifest_lists_the_presets_weights_and_stays_within_budget() -> None:
    assert {"mit_b1_synth", "mit_b0_d1_synth"} <= set(SHIPPED)
    total = sum((SHIPPED_DIR / e["file"]).stat().st_size for e in SHIPPED.values())
    assert total <= 20 * 1024 * 1024
    for e in SHIPPED.values():
        assert e["command"].startswith("edgeseg pretrain ") and e["wall_time_s"] > 0 and e["machine"]["cpu"]


def test_every_shipped_file_matches_its_manifest() -> None:
    assert verify_all() == {name: "ok" for name in SHIPPED}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_encoder_loads_strictly_into_its_arch(name: str) -> None:
    from edgeseg.checkpoint import load_state, load_state_strict
    from edgeseg.models.registry import create_model

    state, meta = load_state(f"builtin:{name}")
    assert meta["kind"] == "encoder" and meta["arch"] == SHIPPED[name]["arch"]
    model = create_model(meta["arch"], num_classes=19)
    load_state_strict(model.encoder, state, name, prefix="encoder.")
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())


def test_int8_storage_round_trip_is_close() -> None:
    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(8, 4, 3, 3, generator=g), "b": torch.randn(8, generator=g)}
    back = dequantise_state(quantise_state(state))
    assert (
        (back["w"] - state["w"])
        .abs()
        .amax(dim=(1, 2, 3))
        .le(state["w"].abs().amax(dim=(1, 2, 3)) / 127)
        .all()
    )
    assert torch.equal(back["b"], state["b"])


def _tiny_run(tmp_path: Path) -> Path:
    from edgeseg.pretrain import PretrainConfig, run_pretrain

    cfg = PretrainConfig(
        arch="segformer_tiny",
        iters=2,
        batch_size=1,
        size=(32, 64),
        warmup_iters=1,
        eval_images=2,
        eval_every=0,
    )
    run_pretrain(
        cfg, tmp_path / "run", command="edgeseg pretrain --arch segformer_tiny --iters 2", log=lambda m: None
    )
    return tmp_path / "run"


def test_pack_resolve_and_tamper_errors(tmp_path: Path) -> None:
    folder = tmp_path / "shipped"
    entry = pack_run(_tiny_run(tmp_path), "tiny_synth", folder)
    assert entry["sha256"] and entry["max_rel_quant_error"] < 0.01
    path = resolve_weights("builtin:tiny_synth", folder)
    assert path == folder / "tiny_synth.safetensors"
    with pytest.raises(ConfigError, match="unknown shipped weights"):
        resolve_weights("builtin:nope", folder)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="edgeseg pretrain --arch segformer_tiny --iters 2"):
        resolve_weights("builtin:tiny_synth", folder)
    path.unlink()
    with pytest.raises(CheckpointError, match="missing.*edgeseg pretrain"):
        resolve_weights("builtin:tiny_synth", folder)
    assert "missing" in verify_all(folder)["tiny_synth"]


def test_pack_rejects_an_unfinished_run(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a finished"):
        pack_run(tmp_path, "x", tmp_path / "shipped")


def test_synthetic_preset_resolves_the_shipped_init() -> None:
    from edgeseg.uda.config import load_config
    from edgeseg.uda.nets import build_networks, check_init_files

    cfg = load_config("synthetic", overrides=["duda.multi_teacher.enabled=false"])
    assert cfg.models.large_init.startswith("builtin:") and cfg.models.small_init.startswith("builtin:")
    check_init_files(cfg)
    nets = build_networks(cfg)
    shipped = resolve_weights(cfg.models.small_init)
    from edgeseg.checkpoint import load_state

    state, _ = load_state(shipped)
    key = next(iter(state))
    assert torch.equal(nets.student.encoder.state_dict()[key[len("encoder.") :]], state[key])
    assert nets.student.meta["provenance"]["init"] == cfg.models.small_init


def test_a_missing_shipped_file_stops_distill_with_the_regenerating_command(
    tmp_path: Path, monkeypatch
) -> None:
    import edgeseg.weights as weights
    from edgeseg.uda.config import load_config
    from edgeseg.uda.nets import check_init_files

    copy = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR, copy)
    (copy / SHIPPED["mit_b1_synth"]["file"]).unlink()
    monkeypatch.setattr(weights, "SHIPPED_DIR", copy)
    monkeypatch.setattr(weights.resolve_weights, "__defaults__", (copy,))
    with pytest.raises(CheckpointError, match="missing; regenerate them: `edgeseg pretrain"):
        check_init_files(load_config("synthetic"))
