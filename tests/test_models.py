"""MiT encoders and decode heads: published sizes, output contract, the cheap head order."""

from __future__ import annotations

import pytest
import torch

from edgeseg.errors import ConfigError
from edgeseg.models.flops import count_gmacs, count_parameters
from edgeseg.models.registry import create_model, list_models

# SegFormer paper, Tab. 6: encoder parameters in millions.
PUBLISHED_ENCODER_PARAMS_M = {"b0": 3.3, "b1": 13.1, "b2": 24.2, "b3": 44.0, "b4": 60.8, "b5": 81.4}


@pytest.mark.parametrize("variant", sorted(PUBLISHED_ENCODER_PARAMS_M))
def test_encoder_parameter_counts_match_published(variant: str) -> None:
    with torch.device("meta"):  # no memory, no init cost: B5 has 81M parameters
        model = create_model(f"segformer_{variant}")
    got = count_parameters(model.encoder) / 1e6
    assert got == pytest.approx(PUBLISHED_ENCODER_PARAMS_M[variant], rel=0.01)


def test_published_structure_b2() -> None:
    with torch.device("meta"):
        enc = create_model("segformer_b2").encoder
    assert [len(s) for s in enc.stages] == [3, 4, 6, 3]
    assert [pe.proj.kernel_size[0] for pe in enc.patch_embeds] == [7, 3, 3, 3]
    assert [pe.proj.stride[0] for pe in enc.patch_embeds] == [4, 2, 2, 2]
    assert [s[0].attn.sr_ratio for s in enc.stages] == [8, 4, 2, 1]
    assert [s[0].attn.heads for s in enc.stages] == [1, 2, 5, 8]
    assert enc.stages[0][0].mlp.fc1.out_features == 4 * 64


@pytest.mark.parametrize("name", ["segformer_tiny", "daformer_tiny"])
def test_output_contract(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        logits, feats = model.forward_with_features(x)
        plain = model(x)
    assert logits.shape == (2, 7, 16, 24)
    assert torch.equal(logits, plain)
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert [f.shape[1] for f in feats] == list(model.encoder.out_channels)


def test_fused_head_equals_standard_order() -> None:
    torch.manual_seed(0)
    model = create_model("segformer_b0", num_classes=19).eval()
    # give BN non-trivial statistics so the test covers the whole fuse path
    model.head.fuse_bn.running_mean.uniform_(-1, 1)
    model.head.fuse_bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        fused = model(x)
        model.head.fused_order = False
        standard = model(x)
    assert (fused - standard).abs().max().item() < 1e-5
    assert not torch.equal(fused, torch.zeros_like(fused))


def test_fused_head_gradients_match() -> None:
    torch.manual_seed(0)
    model = create_model("segformer_tiny", num_classes=5).train()
    model.encoder.spec  # noqa: B018 - spec exists
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for fused in (True, False):
        model.zero_grad()
        model.head.fused_order = fused
        torch.manual_seed(1)  # same dropout / drop-path masks
        model(x).square().mean().backward()
        grads.append(model.head.linear_fuse.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_fused_head_cuts_compute_b0_512x1024() -> None:
    model = create_model("segformer_b0")
    fused = count_gmacs(model, 512, 1024)
    model.head.fused_order = False
    standard = count_gmacs(model, 512, 1024)
    # attention included (counted on the math path): ~9.2 vs ~17.8 GMACs; the head alone goes 13.6 -> 5.0
    assert 8.5 < fused < 10.0 and 17.0 < standard < 18.5
    assert standard - fused > 8.0


def test_drop_path_only_in_training() -> None:
    model = create_model("segformer_tiny", drop_path_rate=0.5)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model.encoder(x)[-1]
    torch.manual_seed(1)
    b = model.encoder(x)[-1]
    assert not torch.equal(a, b)


def test_registry() -> None:
    names = list_models()
    assert {"segformer_b0", "segformer_b5", "daformer_b5", "segformer_tiny"} <= set(names)
    assert list_models("segformer_b?") == [f"segformer_b{i}" for i in range(6)]
    with pytest.raises(ConfigError, match="unknown model 'segformer_b9'"):
        create_model("segformer_b9")
    with pytest.raises(ConfigError, match="unknown model option"):
        create_model("segformer_tiny", wings=2)
