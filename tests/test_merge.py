"""Merging: the maths (linear, BN statistics, layer-wise schedule, task arithmetic / TIES) and the
checkpoint-level behaviour (identity, order invariance, validation before writing, provenance)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.checkpoint import load_model, load_state, save_model, save_state
from edgeseg.errors import ConfigError, ModelMismatchError
from edgeseg.io_utils import sha256_file
from edgeseg.merge import arithmetic
from edgeseg.merge.api import MergeOptions, merge_checkpoints
from edgeseg.merge.bn import find_bn_groups, merge_bn_statistics
from edgeseg.merge.io import normalize_weights
from edgeseg.merge.layerwise import LayerwiseSchedule, depth_positions, layer_weights
from edgeseg.models.registry import create_model

BN = "head.fuse_bn."


def _model(seed: int, arch: str = "segformer_tiny", num_classes: int = 19, batches: int = 10):
    torch.manual_seed(seed)
    model = create_model(arch, num_classes=num_classes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buf.fill_(batches)
    return model


def _save(directory: Path, name: str, seed: int, **kw) -> Path:
    path = directory / f"{name}.safetensors"
    save_model(_model(seed, **kw), path)
    return path


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_state(path)[0]


# ---------------------------------------------------------------- BN statistics (Eq. 4/5)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=5),
    channels=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_bn_merge_equals_pooled_statistics_of_the_concatenated_data(sizes, channels, seed):
    g = torch.Generator().manual_seed(seed)
    parts = [
        torch.randn(n, channels, generator=g, dtype=torch.float64)
        * (1 + 3 * torch.rand(1, generator=g, dtype=torch.float64))
        + 5 * torch.randn(channels, generator=g, dtype=torch.float64)
        for n in sizes
    ]
    means = [p.mean(0) for p in parts]
    variances = [p.var(0, unbiased=False) for p in parts]
    mu, var, n = merge_bn_statistics(means, variances, sizes)
    data = torch.cat(parts)
    assert n == sum(sizes)
    torch.testing.assert_close(mu, data.mean(0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(var, data.var(0, unbiased=False), rtol=1e-10, atol=1e-10)


def test_bn_merge_of_checkpoints_pools_the_statistics(tmp_path):
    """Through the checkpoint path: stats of each model's 'domain' -> stats of the union."""
    g = torch.Generator().manual_seed(0)
    sizes, paths, parts = [3, 9, 5], [], []
    for i, n in enumerate(sizes):
        model = _model(i)
        x = torch.randn(n, model.head.fuse_bn.num_features, generator=g) * (i + 1) + 2 * i
        parts.append(x.double())
        model.head.fuse_bn.running_mean.copy_(x.mean(0))
        model.head.fuse_bn.running_var.copy_(x.var(0, unbiased=False))
        model.head.fuse_bn.num_batches_tracked.fill_(n)
        paths.append(tmp_path / f"m{i}.safetensors")
        save_model(model, paths[-1])
    out = merge_checkpoints(paths, tmp_path / "bn.safetensors", MergeOptions(method="bn")).out
    state = _state(Path(out))
    data = torch.cat(parts)
    torch.testing.assert_close(state[BN + "running_mean"].double(), data.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        state[BN + "running_var"].double(), data.var(0, unbiased=False), rtol=1e-5, atol=1e-5
    )
    assert int(state[BN + "num_batches_tracked"]) == sum(sizes)
    # the plain linear method averages the statistics instead (what the paper's ablation compares against)
    lin = _state(
        Path(merge_checkpoints(paths, tmp_path / "lin.safetensors", MergeOptions(method="linear")).out)
    )
    torch.testing.assert_close(
        lin[BN + "running_mean"].double(),
        torch.stack([p.mean(0) for p in parts]).mean(0),
        rtol=1e-5,
        atol=1e-5,
    )


def test_find_bn_groups():
    keys = [
        "a.bn.running_mean",
        "a.bn.running_var",
        "a.bn.num_batches_tracked",
        "a.bn.weight",
        "b.running_mean",
    ]
    groups = find_bn_groups(keys)
    assert set(groups) == {"a.bn.running_mean", "a.bn.running_var", "a.bn.num_batches_tracked"}
    assert groups["a.bn.running_var"].count == "a.bn.num_batches_tracked"


# ---------------------------------------------------------------- identity and order invariance


@pytest.mark.parametrize("method", ["linear", "bn", "layerwise", "task-arithmetic", "ties", "backbone"])
def test_merging_identical_models_is_the_identity(tmp_path, method):
    model = _model(3)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"same{i}.safetensors")
        save_model(model, paths[-1])
    base = _save(tmp_path, "init", 99)
    extra = {
        "task-arithmetic": {"base": base},
        "ties": {"base": base, "params": {"density": 1.0}},
        "backbone": {"params": {"heads": ["a", "b", "c"]}},
    }.get(method, {})
    options = MergeOptions(method=method, weights=[0.5, 0.3, 0.2], **extra)
    merged = _state(Path(merge_checkpoints(paths, tmp_path / "m.safetensors", options).out))
    original = model.state_dict()
    for key, value in original.items():
        if key.endswith("num_batches_tracked"):
            assert int(merged[key if method != "backbone" else key.replace("head.", "heads.a.")]) == (
                10 if method == "backbone" and key.startswith("head.") else 30
            )
            continue
        if method == "backbone" and key.startswith("head."):
            for d in "abc":
                assert torch.equal(merged[key.replace("head.", f"heads.{d}.")], value), key
            continue
        if method in ("task-arithmetic", "ties"):
            torch.testing.assert_close(merged[key], value, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(merged[key], value), f"{method}: {key} changed"


@settings(max_examples=6, deadline=None)
@given(
    perm=st.permutations([0, 1, 2]),
    method=st.sampled_from(["linear", "bn", "task-arithmetic", "ties"]),
    weights=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3),
)
def test_symmetric_methods_do_not_depend_on_input_order(perm, method, weights):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        paths = [_save(d, f"m{i}", i, batches=5 * (i + 1)) for i in range(3)]
        base = _save(d, "init", 7) if method in ("task-arithmetic", "ties") else None
        a = merge_checkpoints(
            paths, d / "a.safetensors", MergeOptions(method=method, weights=weights, base=base)
        )
        b = merge_checkpoints(
            [paths[i] for i in perm],
            d / "b.safetensors",
            MergeOptions(method=method, weights=[weights[i] for i in perm], base=base),
        )
        sa, sb = _state(Path(a.out)), _state(Path(b.out))
        assert sa.keys() == sb.keys()
        for key in sa:
            torch.testing.assert_close(sa[key], sb[key], rtol=1e-6, atol=1e-7, msg=key)


# ---------------------------------------------------------------- layer-wise schedule


def test_depth_order_is_true_depth_not_key_order():
    keys = [
        "head.classifier.weight",
        "encoder.norms.0.weight",
        "encoder.stages.0.10.norm1.weight",
        "encoder.stages.0.9.norm1.weight",
        "encoder.patch_embeds.1.proj.weight",
        "encoder.patch_embeds.0.proj.weight",
        "encoder.stages.1.0.norm1.weight",
    ]
    t = depth_positions(keys)
    order = sorted(keys, key=t.__getitem__)
    assert order == [
        "encoder.patch_embeds.0.proj.weight",
        "encoder.stages.0.9.norm1.weight",
        "encoder.stages.0.10.norm1.weight",
        "encoder.norms.0.weight",
        "encoder.patch_embeds.1.proj.weight",
        "encoder.stages.1.0.norm1.weight",
        "head.classifier.weight",
    ]
    assert t["encoder.patch_embeds.0.proj.weight"] == 0.0 and t["head.classifier.weight"] == 1.0


def test_schedule_shapes():
    lin = LayerwiseSchedule(start=0.2, shape="linear", final=1.0)
    cos = LayerwiseSchedule(start=0.2, shape="cosine", final=1.0)
    step = LayerwiseSchedule(start=0.2, shape="step", final=0.8)
    assert lin.anchor_weight(0.1, 0.25) == 0.25 and lin.anchor_weight(0.6, 0.25) == pytest.approx(0.625)
    assert cos.anchor_weight(0.6, 0.25) == pytest.approx(0.625)  # cosine crosses half-way at the midpoint
    assert cos.anchor_weight(0.3, 0.25) < lin.anchor_weight(0.3, 0.25)
    assert step.anchor_weight(0.2, 0.25) == 0.25 and step.anchor_weight(0.21, 0.25) == 0.8
    w = layer_weights(lin, [0.5, 0.25, 0.25], anchor=1, t=1.0)
    assert w == pytest.approx([0.0, 1.0, 0.0])
    with pytest.raises(ConfigError):
        LayerwiseSchedule(shape="exp")
    with pytest.raises(ConfigError):
        LayerwiseSchedule(final=1.5)


def test_layerwise_weights_match_the_schedule_at_first_middle_last_layer(tmp_path):
    """Models whose floats are constants v_i reveal the weights: merged = sum_i w_i(t) v_i."""
    values = [1.0, 10.0, 100.0]
    paths = []
    for i, v in enumerate(values):
        model = _model(i)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(v)
        paths.append(tmp_path / f"c{i}.safetensors")
        save_model(model, paths[-1])
    params = {"anchor": str(paths[2]), "ramp_start": 0.25, "ramp_shape": "linear", "anchor_final": 0.9}
    report = merge_checkpoints(
        paths, tmp_path / "lw.safetensors", MergeOptions(method="layerwise", params=params)
    )
    state = _state(Path(report.out))

    def anchor_weight(key: str) -> float:  # others share the rest equally: m = a*100 + (1-a)*(1+10)/2
        return (float(state[key].flatten()[0]) - 5.5) / (100.0 - 5.5)

    # segformer_tiny has 13 layers in depth order: per stage patch_embed, 1 block, norm (x4), then the head.
    # first layer t=0 -> 1/3; layer 6 (patch_embeds.2) t=0.5 -> 1/3 + (0.9-1/3) * (0.5-0.25)/0.75; head -> 0.9
    assert anchor_weight("encoder.patch_embeds.0.proj.weight") == pytest.approx(1 / 3, abs=1e-6)
    assert anchor_weight("encoder.patch_embeds.2.proj.weight") == pytest.approx(
        1 / 3 + (0.9 - 1 / 3) / 3, abs=1e-6
    )
    assert anchor_weight("encoder.norms.3.weight") == pytest.approx(
        1 / 3 + (0.9 - 1 / 3) * (11 / 12 - 0.25) / 0.75, abs=1e-6
    )
    assert anchor_weight("head.classifier.weight") == pytest.approx(0.9, abs=1e-6)
    assert report.layer_anchor_weights["head"] == pytest.approx(0.9)
    assert list(report.layer_anchor_weights)[:3] == [
        "encoder.patch_embeds.0",
        "encoder.stages.0.0",
        "encoder.norms.0",
    ]


def test_layerwise_across_architectures_merges_the_shared_backbone_only(tmp_path):
    seg = _save(tmp_path, "seg", 1, arch="segformer_tiny")
    daf = _save(tmp_path, "daf", 2, arch="daformer_tiny")
    report = merge_checkpoints(
        [seg, daf],
        tmp_path / "x.safetensors",
        MergeOptions(method="layerwise", params={"anchor": "daf.safetensors"}),
    )
    assert any("architectures differ" in m for m in report.messages)
    merged, meta = load_state(report.out)
    s_seg, s_daf = _state(seg), _state(daf)
    assert meta["arch"] == "daformer_tiny" and merged.keys() == s_daf.keys()
    key = "encoder.patch_embeds.0.proj.weight"  # t = 0: equal weights
    torch.testing.assert_close(merged[key], (s_seg[key] + s_daf[key]) / 2)
    for k in (k for k in s_daf if k.startswith("head.")):
        assert torch.equal(merged[k], s_daf[k])
    load_model(report.out)
    with pytest.raises(ModelMismatchError, match="same architecture"):
        merge_checkpoints([seg, daf], tmp_path / "y.safetensors", MergeOptions(method="bn"))


# ---------------------------------------------------------------- task arithmetic / TIES


def test_ties_by_hand():
    base = torch.zeros(4)
    t1, t2 = torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.tensor([1.0, 2.0, -0.4, -3.0])
    full = arithmetic.ties_merge(base, [t1, t2], [0.5, 0.5], density=1.0)
    torch.testing.assert_close(full, torch.tensor([2.0, 2.0, 0.5, -3.0]))
    half = arithmetic.ties_merge(base, [t1, t2], [0.5, 0.5], density=0.5)
    torch.testing.assert_close(half, torch.tensor([3.0, 2.0, 0.0, -3.0]))
    ta = arithmetic.task_arithmetic(torch.ones(4), [t1 + 1, t2 + 1], [0.5, 0.5], scale=2.0)
    torch.testing.assert_close(ta, 1 + (t1 + t2))


def test_task_arithmetic_with_scale_one_is_linear_and_needs_a_base(tmp_path):
    paths = [_save(tmp_path, f"m{i}", i) for i in range(2)]
    base = _save(tmp_path, "init", 5)
    ta = _state(
        Path(
            merge_checkpoints(
                paths, tmp_path / "ta.safetensors", MergeOptions(method="task-arithmetic", base=base)
            ).out
        )
    )
    lin = _state(Path(merge_checkpoints(paths, tmp_path / "lin.safetensors", MergeOptions(method="bn")).out))
    for key in lin:
        torch.testing.assert_close(ta[key], lin[key], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="--base"):
        merge_checkpoints(paths, tmp_path / "no.safetensors", MergeOptions(method="ties"))
    assert not (tmp_path / "no.safetensors").exists()


def test_encoder_only_base_falls_back_to_the_mean_for_the_head(tmp_path):
    paths = [_save(tmp_path, f"m{i}", i) for i in range(2)]
    state, meta = load_state(_save(tmp_path, "full", 5))
    save_state(
        {k: v for k, v in state.items() if k.startswith("encoder.")},
        tmp_path / "enc.safetensors",
        {**meta, "kind": "encoder"},
    )
    report = merge_checkpoints(
        paths, tmp_path / "t.safetensors", MergeOptions(method="ties", base=tmp_path / "enc.safetensors")
    )
    assert any("not in the base" in m for m in report.messages)
    merged, s0, s1 = _state(Path(report.out)), _state(paths[0]), _state(paths[1])
    torch.testing.assert_close(
        merged["head.classifier.weight"], (s0["head.classifier.weight"] + s1["head.classifier.weight"]) / 2
    )


# ---------------------------------------------------------------- backbone-only (multi-head)


def test_backbone_merge_writes_a_multihead_checkpoint(tmp_path):
    from edgeseg.merge.multihead import load_any_model, split_multihead

    paths = [_save(tmp_path, n, i) for i, n in enumerate(["city", "night"])]
    report = merge_checkpoints(paths, tmp_path / "mh.safetensors", MergeOptions(method="backbone"))
    assert report.heads == ["city", "night"]  # defaults to the file stems
    state, meta = load_state(report.out)
    assert meta["kind"] == "multihead" and meta["heads"] == ["city", "night"]
    bn_merge = _state(Path(merge_checkpoints(paths, tmp_path / "bn.safetensors", MergeOptions()).out))
    for key in (k for k in bn_merge if k.startswith("encoder.")):
        assert torch.equal(state[key], bn_merge[key])
    for name, path in zip(["city", "night"], paths, strict=True):
        own = _state(path)
        for key in (k for k in own if k.startswith("head.")):
            assert torch.equal(state[key.replace("head.", f"heads.{name}.")], own[key])
    model = load_any_model(report.out)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        assert len(outs) == 2 and model.output_names() == ["logits_city", "logits_night"]
        torch.testing.assert_close(model.domain_model("night")(x), outs[1])
        singles = split_multihead(report.out, tmp_path / "split")
        torch.testing.assert_close(load_model(singles[0])(x), outs[0])
    with pytest.raises(ConfigError, match="cannot name a head"):
        merge_checkpoints(
            paths, tmp_path / "bad.safetensors", MergeOptions(method="backbone", params={"heads": "a.b,c"})
        )


# ---------------------------------------------------------------- validation before writing


def test_mismatches_name_the_first_bad_key_and_write_nothing(tmp_path):
    a = _save(tmp_path, "a", 0)
    state, meta = load_state(a)
    out = tmp_path / "out.safetensors"

    bad = dict(state)
    bad["encoder.norms.1.weight"] = torch.ones(3)
    save_state(bad, tmp_path / "shape.safetensors", meta)
    with pytest.raises(ModelMismatchError, match=r"'encoder\.norms\.1\.weight' has shape"):
        merge_checkpoints([a, tmp_path / "shape.safetensors"], out)

    missing = {k: v for k, v in state.items() if k != "head.classifier.bias"}
    save_state(missing, tmp_path / "missing.safetensors", meta)
    with pytest.raises(ModelMismatchError, match=r"lacks tensor 'head\.classifier\.bias'"):
        merge_checkpoints([a, tmp_path / "missing.safetensors"], out)

    half = {k: (v.half() if k == "head.classifier.weight" else v) for k, v in state.items()}
    save_state(half, tmp_path / "half.safetensors", meta)
    with pytest.raises(ModelMismatchError, match="F32 in 'a.safetensors' but F16"):
        merge_checkpoints([a, tmp_path / "half.safetensors"], out)

    with pytest.raises(ModelMismatchError, match="num_classes"):
        merge_checkpoints([a, _save(tmp_path, "c7", 1, num_classes=7)], out)
    with pytest.raises(ConfigError, match="more than once"):
        merge_checkpoints([a, a], out)
    with pytest.raises(ConfigError, match="one of the inputs"):
        merge_checkpoints([a, _save(tmp_path, "b", 1)], a)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_integer_buffers_must_be_equal_and_are_copied(tmp_path):
    a, b = _save(tmp_path, "a", 0), _save(tmp_path, "b", 1)
    for path, index in ((a, [0, 2, 1]), (b, [0, 2, 1])):
        state, meta = load_state(path)
        state["encoder.perm_index"] = torch.tensor(index, dtype=torch.int64)
        save_state(state, path, meta)
    merged = _state(Path(merge_checkpoints([a, b], tmp_path / "m.safetensors").out))
    assert torch.equal(merged["encoder.perm_index"], torch.tensor([0, 2, 1]))

    state, meta = load_state(b)
    state["encoder.perm_index"] = torch.tensor([1, 0, 2])
    save_state(state, b, meta)
    with pytest.raises(ModelMismatchError, match="integer buffer 'encoder.perm_index' differs"):
        merge_checkpoints([a, b], tmp_path / "n.safetensors")
    assert not (tmp_path / "n.safetensors").exists()


def test_options_the_method_would_ignore_are_errors(tmp_path):
    paths = [_save(tmp_path, f"m{i}", i) for i in range(2)]
    for options, flag in (
        (MergeOptions(method="bn", params={"anchor": "1"}), "'anchor' for merge method 'bn'"),
        (MergeOptions(method="linear", base=paths[0]), "--base does not apply"),
        (
            MergeOptions(method="task-arithmetic", base=paths[0], params={"density": 0.5}),
            r"'density' for merge method 'task-arithmetic' \(valid: scale\)",
        ),
        (MergeOptions(method="bn", params={"ramp_start": 0.1}), "ramp_start"),
        (MergeOptions(method="layerwise", params={"heads": "a,b"}), "heads"),
        (MergeOptions(method="ties", base=paths[0], params={"density": 0}), "density.*> 0"),
        (MergeOptions(method="layerwise", params={"ramp_shape": "exp"}), "one of linear"),
        (MergeOptions(method="task-arithmetic", base=paths[0], params={"scale": "nan"}), "scale"),
    ):
        with pytest.raises(ConfigError, match=flag):
            merge_checkpoints(paths, tmp_path / "o.safetensors", options)
    assert not (tmp_path / "o.safetensors").exists()


def test_weights_are_checked_and_normalised():
    assert normalize_weights(None, 4) == ([0.25] * 4, None)
    w, msg = normalize_weights([2, 1, 1], 3)
    assert w == [0.5, 0.25, 0.25] and "normalised" in msg
    assert normalize_weights([0.5, 0.5], 2) == ([0.5, 0.5], None)
    for bad in ([1.0, math.nan], [1.0, math.inf], [1.0, -0.5], [0.0, 0.0], [1.0]):
        with pytest.raises(ConfigError):
            normalize_weights(bad, 2)


def test_provenance_records_inputs_method_and_weights(tmp_path):
    paths = [_save(tmp_path, f"m{i}", i) for i in range(2)]
    report = merge_checkpoints(
        paths, tmp_path / "m.safetensors", MergeOptions(method="linear", weights=[3, 1])
    )
    assert report.weights == [0.75, 0.25] and report.messages
    _, meta = load_state(report.out)
    merge = meta["provenance"]["merge"]
    assert merge["method"] == "linear" and merge["weights"] == [0.75, 0.25]
    assert [i["sha256"] for i in merge["inputs"]] == [sha256_file(p) for p in paths]
    assert meta["arch"] == "segformer_tiny" and meta["kind"] == "segmentor"
    assert load_model(report.out).num_classes == 19
