"""Weight import: parity with transformers, strict mapping, and clean failures."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from edgeseg.checkpoint import load_model, read_checkpoint_meta, save_model
from edgeseg.cli import main
from edgeseg.errors import CheckpointError, ConversionError
from edgeseg.models.convert import convert_checkpoint
from edgeseg.models.registry import create_model

transformers = pytest.importorskip("transformers")

HF_SIZES = {
    "segformer_b0": dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256),
    "segformer_b1": dict(hidden_sizes=[64, 128, 320, 512], depths=[2, 2, 2, 2], decoder_hidden_size=256),
}


def _hf_model(arch: str, num_labels: int = 19):
    torch.manual_seed(0)
    cfg = transformers.SegformerConfig(num_labels=num_labels, **HF_SIZES[arch])
    model = transformers.SegformerForSemanticSegmentation(cfg).eval()
    # random BN statistics so the decode head's BatchNorm is really exercised
    model.decode_head.batch_norm.running_mean.uniform_(-0.5, 0.5)
    model.decode_head.batch_norm.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("arch", sorted(HF_SIZES))
def test_transformers_parity(tmp_path: Path, arch: str) -> None:
    hf = _hf_model(arch)
    hf.save_pretrained(tmp_path / "hf")
    out = tmp_path / "ours.safetensors"
    assert main(["convert", str(tmp_path / "hf"), str(out)]) == 0
    ours = load_model(out)
    assert ours.arch == arch
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected = hf(pixel_values=x).logits
        got = ours(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


def test_transformers_v5_names_and_bin_file(tmp_path: Path) -> None:
    """transformers >= 5 in-memory key names, stored as pytorch_model.bin (read with weights_only=True)."""
    hf = _hf_model("segformer_b0", num_labels=5)
    folder = tmp_path / "hf"
    hf.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    out = tmp_path / "ours.safetensors"
    convert_checkpoint(folder, out)
    ours = load_model(out)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - hf(pixel_values=x).logits).abs().max().item() < 1e-4


def test_nvlabs_imagenet_backbone(
    to_nvlabs: Callable[..., dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src_model = create_model("segformer_b0")
    nv = to_nvlabs(src_model.state_dict())
    nv["head.weight"] = torch.randn(1000, 256)
    nv["head.bias"] = torch.randn(1000)
    torch.save(nv, tmp_path / "mit_b0.pth")
    out = tmp_path / "mit_b0.safetensors"
    assert main(["convert", str(tmp_path / "mit_b0.pth"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "encoder" in printed and "head.weight (ImageNet classifier)" in printed
    meta = read_checkpoint_meta(out)
    assert meta["kind"] == "encoder" and meta["arch"] == "segformer_b0"
    with pytest.raises(CheckpointError, match="encoder weights only"):
        load_model(out)
    from safetensors.torch import load_file

    loaded = load_file(str(out))
    for k, v in src_model.encoder.state_dict().items():
        assert torch.equal(loaded["encoder." + k], v), k


def test_daformer_uda_checkpoint_submodel(to_nvlabs: Callable[..., dict], tmp_path: Path) -> None:
    """A DAFormer/MIC wrapper checkpoint: pick the EMA teacher, report the other networks."""
    student, teacher = create_model("daformer_tiny", 19).eval(), create_model("daformer_tiny", 19).eval()

    def mmseg_keys(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
        out = {f"{prefix}.backbone.{k}": v for k, v in to_nvlabs(model.state_dict()).items()}
        for k, v in model.head.state_dict().items():
            k = k.replace("embed_layers.", "embed_layers.").replace("classifier.", "conv_seg.")
            k = re.sub(r"^embed_layers\.(\d)\.", r"embed_layers.\1.proj.", k)
            k = re.sub(r"^aspp\.(\d)\.(depthwise|pointwise)\.", r"fuse_layer.aspp_modules.\1.\2_conv.", k)
            k = re.sub(r"^aspp\.(\d)\.", r"fuse_layer.aspp_modules.\1.", k)
            k = k.replace("bottleneck.", "fuse_layer.bottleneck.")
            out[f"{prefix}.decode_head.{k}"] = v
        return out

    ckpt = {
        "meta": {"iter": 40000},
        "state_dict": {**mmseg_keys(student, "model"), **mmseg_keys(teacher, "ema_model")},
    }
    torch.save(ckpt, tmp_path / "daformer.pth")
    report = convert_checkpoint(tmp_path / "daformer.pth", tmp_path / "t.safetensors", submodel="ema_model")
    assert report.arch == "daformer_tiny" and report.skipped_submodels == ["model"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "t.safetensors")(x), teacher(x), atol=1e-6)


def test_classifier_with_other_class_count_is_dropped_and_reported(tmp_path: Path) -> None:
    hf = _hf_model("segformer_b0", num_labels=150)
    hf.save_pretrained(tmp_path / "hf")
    report = convert_checkpoint(tmp_path / "hf", tmp_path / "o.safetensors", num_classes=19)
    assert report.num_classes == 19
    assert any("150 classes -> 19" in d for d in report.dropped)
    model = load_model(tmp_path / "o.safetensors")
    assert torch.equal(model.head.linear_fuse.weight, hf.decode_head.linear_fuse.weight)


def test_save_load_roundtrip_keeps_metadata(tmp_path: Path) -> None:
    model = create_model("segformer_tiny", num_classes=3, meta={"classes": ["a", "b", "c"]})
    save_model(model, tmp_path / "m.safetensors", provenance={"trained_on": "unit test"})
    loaded = load_model(tmp_path / "m.safetensors")
    assert not loaded.training
    assert (
        loaded.meta["classes"] == ["a", "b", "c"] and loaded.meta["provenance"]["trained_on"] == "unit test"
    )
    assert len(loaded.meta["palette"]) == 3 and loaded.meta["mean"][0] == pytest.approx(123.675)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    assert not list(tmp_path.glob(".*.tmp"))


# --- user errors: one line, non-zero exit, nothing written -------------------------------------------------


def _run_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    return err


def test_convert_corrupt_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "mit_b0.pth"
    bad.write_bytes(b"\x80\x02garbage" * 100)
    err = _run_error(["convert", str(bad), str(tmp_path / "o.safetensors")], capsys)
    assert "cannot read" in err
    assert not list(tmp_path.glob("o.safetensors*")) and not list(tmp_path.glob(".o.safetensors*"))


def test_convert_non_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pth")
    err = _run_error(["convert", str(tmp_path / "list.pth"), str(tmp_path / "o.safetensors")], capsys)
    assert "no tensor state dict" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_other_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resnet_like = {
        "conv1.weight": torch.randn(8, 3, 7, 7),
        "bn1.weight": torch.randn(8),
        "layer1.0.conv1.weight": torch.randn(8, 8, 3, 3),
        "fc.weight": torch.randn(10, 8),
    }
    torch.save({"state_dict": resnet_like}, tmp_path / "resnet.pth")
    err = _run_error(["convert", str(tmp_path / "resnet.pth"), str(tmp_path / "o.safetensors")], capsys)
    assert "map to no edgeseg parameter" in err and "conv1.weight" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _run_error(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "o.safetensors")], capsys)
    assert "does not exist" in err


def test_load_truncated_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = create_model("segformer_tiny")
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(path)
    _run_error(["info", str(path)], capsys)


def test_mismatched_checkpoint_keys_fail_clearly(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = create_model("segformer_tiny")
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    meta = read_checkpoint_meta(path)
    from edgeseg.checkpoint import encode_meta

    state = {k: v for k, v in model.state_dict().items() if "classifier" not in k}
    save_file(state, str(path), metadata=encode_meta(meta))
    with pytest.raises(CheckpointError, match="does not fit architecture 'segformer_tiny'"):
        load_model(path)


def test_info_reports_flops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_model(create_model("segformer_tiny"), tmp_path / "m.safetensors")
    assert main(["info", str(tmp_path / "m.safetensors"), "--size", "64x128"]) == 0
    out = capsys.readouterr().out
    assert "segformer_tiny" in out and "GMACs" in out and "GFLOPs" in out


def test_conversion_error_is_checkpoint_error() -> None:
    assert issubclass(ConversionError, CheckpointError)
