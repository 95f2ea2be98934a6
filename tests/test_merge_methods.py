"""The merge-method registry: the contract every registered method meets (parametrized, so a new method gets
these tests for free), the registry path checked against the maths modules bit for bit, the CLI's generic
`--param` handling, and DARE's invariances."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from edgeseg.checkpoint import load_state, save_model
from edgeseg.cli import main
from edgeseg.errors import ConfigError
from edgeseg.merge import arithmetic, bn, layerwise, linear
from edgeseg.merge.api import MergeOptions, merge_checkpoints
from edgeseg.merge.methods import REGISTRY, get_method
from edgeseg.merge.methods.base import MergeJob, MergeMethod, Plan
from edgeseg.merge.methods.dare import dare_merge, mask_seed
from edgeseg.merge.methods.params import MergeParams, param, param_specs
from edgeseg.merge.plan import Step
from edgeseg.models.registry import create_model

METHODS = sorted(REGISTRY)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one intra-op thread


def _perturbed(init: torch.nn.Module, seed: int, batches: int) -> torch.nn.Module:
    """A 'domain student': the shared init moved a little, with its own BatchNorm statistics."""
    model = create_model("segformer_tiny", num_classes=19)
    model.load_state_dict(init.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + 1.5 * torch.rand(buf.shape, generator=g))
            elif name.endswith("num_batches_tracked"):
                buf.fill_(batches)
    return model


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> tuple[list[Path], Path]:
    """Two tiny students (city, night) adapted from one init, and that init (the base)."""
    folder = tmp_path_factory.mktemp("students")
    torch.manual_seed(0)
    init = create_model("segformer_tiny", num_classes=19)
    base = folder / "init.safetensors"
    save_model(init, base)
    paths = []
    for i, domain in enumerate(("city", "night")):
        paths.append(folder / f"{domain}.safetensors")
        save_model(
            _perturbed(init, 10 + i, batches=4 * (i + 1)), paths[-1], provenance={"target_domain": domain}
        )
    return paths, base


def _options(name: str, base: Path, **kw) -> MergeOptions:
    return MergeOptions(method=name, base=base if REGISTRY[name].needs_base else None, **kw)


def _state(path: Path | str) -> dict[str, torch.Tensor]:
    return load_state(path)[0]


# ---------------------------------------------------------------- the contract, for every registered method


@pytest.mark.parametrize("name", METHODS)
def test_every_method_merges_two_students(name, students, tmp_path):
    paths, base = students
    report = merge_checkpoints(paths, tmp_path / "m.safetensors", _options(name, base, weights=[0.6, 0.4]))
    merged, meta = load_state(report.out)
    inputs = _state(paths[0])
    assert report.method == name and meta["provenance"]["merge"]["method"] == name
    expected = {k: v for k, v in inputs.items() if not (report.heads and k.startswith("head."))}
    for head in report.heads or []:  # a multi-head result: each input's head under heads.<domain>.
        expected.update(
            {f"heads.{head}.{k[len('head.') :]}": v for k, v in inputs.items() if k.startswith("head.")}
        )
    assert list(merged) == list(expected)  # keys (and their order) preserved
    for key, value in merged.items():
        assert value.shape == expected[key].shape and value.dtype == expected[key].dtype, key
        if value.dtype.is_floating_point:
            assert torch.isfinite(value).all(), key
    assert report.params == get_method(name).parse({}).to_json()


@pytest.mark.parametrize("name", METHODS)
def test_every_method_describes_itself(name):
    method = REGISTRY[name]
    assert isinstance(method, MergeMethod) and method.name == name and method.summary
    params = method.parse({})
    assert isinstance(params, method.Params) and isinstance(params, MergeParams)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.__setattr__("x", 1)
    for spec in param_specs(method.Params):
        assert spec.help, f"{name}.{spec.name} has no help text"


@pytest.mark.parametrize("command", ["merge", "merge-export"])
def test_help_lists_every_method_and_parameter(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "--param" in text
    for name, method in REGISTRY.items():
        assert f"{name}: " in text, name
        for spec in param_specs(method.Params):
            assert f"--param {spec.name}=" in text, (name, spec.name)


@pytest.mark.parametrize("name", METHODS)
def test_unknown_param_is_one_line_listing_the_valid_ones(name, students, tmp_path, capsys):
    paths, base = students
    out = tmp_path / "m.safetensors"
    argv = [
        "merge",
        *map(str, paths),
        "--out",
        str(out),
        "--method",
        name,
        "--param",
        "bogus=1",
        "--no-progress",
    ]
    if REGISTRY[name].needs_base:
        argv += ["--base", str(base)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown parameter 'bogus'"), err
    specs = param_specs(REGISTRY[name].Params)
    assert f"valid: {', '.join(s.name for s in specs)}" in err[0] if specs else "takes none" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "spec"),
    [(n, s) for n in METHODS for s in param_specs(REGISTRY[n].Params) if s.kind in (int, float)],
)
@pytest.mark.parametrize("bad", ["nan", "inf", "-1e30", "1e30", "x"])
def test_numeric_params_refuse_bad_values(name, spec, bad):
    with pytest.raises(ConfigError, match=spec.name):
        REGISTRY[name].parse({spec.name: bad})


def test_param_syntax_errors_through_the_cli(students, tmp_path, capsys):
    paths, base = students
    common = ["merge", *map(str, paths), "--out", str(tmp_path / "m.st"), "--no-progress"]
    for extra, fragment in (
        (["-p", "density"], "NAME=VALUE"),
        (
            ["--method", "ties", "--base", str(base), "-p", "density=0.1", "-p", "density=0.2"],
            "more than once",
        ),
        (["--method", "ties", "--base", str(base), "-p", "density=0"], "> 0 and <= 1"),
        (["--method", "ties"], "needs --base"),
        (["--base", str(base)], "--base does not apply to --method bn"),
        (["--method", "layerwise", "-p", "ramp_shape=exp"], "one of linear, cosine, step"),
    ):
        assert main(common + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and fragment in err[0], (extra, err)
    assert not (tmp_path / "m.st").exists()


def test_cli_params_reach_the_merge(students, tmp_path, capsys):
    paths, base = students
    out = tmp_path / "t.safetensors"
    assert (
        main(
            [
                "merge",
                *map(str, paths),
                "--out",
                str(out),
                "--method",
                "ties",
                "--base",
                str(base),
                "-p",
                "density=0.5",
                "--param",
                "scale=0.8",
                "--no-progress",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    merge = load_state(out)[1]["provenance"]["merge"]
    assert (merge["density"], merge["scale"], merge["base"]["file"]) == (0.5, 0.8, "init.safetensors")
    out = tmp_path / "l.safetensors"
    assert (
        main(
            [
                "merge",
                *map(str, paths),
                "--out",
                str(out),
                "--method",
                "layerwise",
                "-p",
                "anchor=night",
                "-p",
                "ramp_shape=step",
                "--no-progress",
            ]
        )
        == 0
    )
    merge = load_state(out)[1]["provenance"]["merge"]
    assert merge["anchor"] == "night.safetensors" and merge["schedule"]["shape"] == "step"
    assert "anchor night.safetensors" in capsys.readouterr().out


def test_a_new_method_needs_no_cli_edit(students, tmp_path, monkeypatch, capsys):
    """Register a method at run time: `edgeseg merge` takes it and its --param without any change."""

    @dataclass(frozen=True)
    class FirstParams(MergeParams):
        owner: ClassVar[str] = "first"
        which: int = param(0, "the input to copy", lo=0)

    class FirstMethod(MergeMethod):
        name = "first"
        summary = "copy one input"
        Params = FirstParams

        def plan(self, job: MergeJob) -> Plan:
            copy = job.merger.copy
            return Plan(
                [Step(k, info, lambda k=k: copy(job.params.which, k)) for k, info in job.ref.tensors.items()],
                provenance={"which": job.params.which},
            )

    monkeypatch.setitem(REGISTRY, "first", FirstMethod())
    paths, _ = students
    out = tmp_path / "first.safetensors"
    assert (
        main(
            [
                "merge",
                *map(str, paths),
                "--out",
                str(out),
                "--method",
                "first",
                "-p",
                "which=1",
                "--no-progress",
            ]
        )
        == 0
    )
    merged, src = _state(out), _state(paths[1])
    assert all(torch.equal(merged[k], src[k]) for k in src)
    assert main(["merge", *map(str, paths), "--out", str(out), "--method", "first", "-p", "which=-1"]) == 2
    assert "'which' must be >= 0" in capsys.readouterr().err


# ---------------------------------------------------------------- registry path == the maths modules

TASK_VECTOR_METHODS = ("task-arithmetic", "ties", "dare")


def _reference(
    name: str, states: list[dict], weights: list[float], base: dict, params
) -> dict[str, torch.Tensor]:
    """The merge computed straight from the maths modules, key by key (no registry, no streaming)."""
    ref = states[0]
    groups = bn.find_bn_groups(ref)
    pooled = name != "linear"  # written out, not read from the registry: this is the reference
    depth = layerwise.depth_positions(ref) if name == "layerwise" else {}

    def default(key: str, w: list[float]) -> torch.Tensor:
        group = groups.get(key)
        if group is not None and pooled:
            counts = [int(s[group.count]) for s in states] if group.count else [1] * len(states)
            mean, var, n = bn.merge_bn_statistics(
                [s[group.mean] for s in states], [s[group.var] for s in states], counts, w
            )
            return {group.mean: mean, group.var: var}.get(key, torch.tensor(n, dtype=ref[key].dtype))
        if key.endswith("num_batches_tracked"):
            return torch.tensor(sum(int(s[key]) for s in states), dtype=ref[key].dtype)
        if not ref[key].dtype.is_floating_point:
            return ref[key]
        return linear.weighted_mean([s[key] for s in states], w)

    if name not in ("linear", "bn", "layerwise", "backbone", *TASK_VECTOR_METHODS):
        raise AssertionError(f"no reference for merge method '{name}': add one here")
    out = {}
    for key, value in ref.items():
        tensors = [s[key] for s in states]
        task_vector = name in TASK_VECTOR_METHODS and key not in groups and value.dtype.is_floating_point
        if name == "layerwise":
            w = layerwise.layer_weights(params.schedule, weights, 0, depth[key])
            out[key] = default(key, w)
        elif name == "backbone" and key.startswith("head."):
            for d, s in zip(("city", "night"), states, strict=True):
                out[f"heads.{d}.{key[5:]}"] = s[key]
        elif task_vector and name == "task-arithmetic":
            out[key] = arithmetic.task_arithmetic(base[key], tensors, weights, params.scale)
        elif task_vector and name == "ties":
            out[key] = arithmetic.ties_merge(base[key], tensors, weights, params.density, params.scale)
        elif task_vector and name == "dare":
            seeds = [mask_seed(params.seed, i, key) for i in range(len(states))]
            out[key] = dare_merge(base[key], tensors, weights, params.drop, params.scale, seeds)
        else:
            out[key] = default(key, weights)
    return out


REFERENCE_PARAMS = {
    "linear": {},
    "bn": {},
    "backbone": {},
    "layerwise": {"ramp_start": 0.2, "ramp_shape": "cosine", "anchor_final": 0.8},
    "task-arithmetic": {"scale": 0.7},
    "ties": {"density": 0.4, "scale": 1.2},
    "dare": {"drop": 0.3, "seed": 5, "scale": 0.9},
}


@pytest.mark.parametrize("name", METHODS)
def test_registry_path_equals_the_maths_modules_bit_for_bit(name, students, tmp_path):
    paths, base = students
    params = REFERENCE_PARAMS.get(name, {})
    options = _options(name, base, weights=[0.7, 0.3], params=params)
    merged = _state(merge_checkpoints(paths, tmp_path / "m.safetensors", options).out)
    expected = _reference(
        name, [_state(p) for p in paths], [0.7, 0.3], _state(base), REGISTRY[name].parse(params)
    )
    assert sorted(merged) == sorted(expected)
    for key in expected:
        assert merged[key].dtype == expected[key].dtype and torch.equal(merged[key], expected[key]), (
            name,
            key,
        )


# ---------------------------------------------------------------- DARE


def test_dare_with_drop_zero_is_task_arithmetic_bit_for_bit(students, tmp_path):
    paths, base = students
    for scale in (1.0, 0.6):
        dare = _state(
            merge_checkpoints(
                paths,
                tmp_path / "d.safetensors",
                MergeOptions(
                    method="dare", base=base, weights=[0.3, 0.7], params={"drop": 0, "scale": scale}
                ),
            ).out
        )
        ta = _state(
            merge_checkpoints(
                paths,
                tmp_path / "t.safetensors",
                MergeOptions(
                    method="task-arithmetic", base=base, weights=[0.3, 0.7], params={"scale": scale}
                ),
            ).out
        )
        assert dare.keys() == ta.keys() and all(torch.equal(dare[k], ta[k]) for k in ta)


def test_dare_of_inputs_equal_to_the_base_is_the_base(students, tmp_path):
    _, base = students
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(base.read_bytes())
    merged = _state(
        merge_checkpoints(
            [base, copy],
            tmp_path / "m.safetensors",
            MergeOptions(method="dare", base=base, params={"drop": 0.9, "seed": 3}),
        ).out
    )
    for key, value in _state(base).items():
        if key.endswith("num_batches_tracked"):
            continue  # summed: the merged statistics stand for both inputs' batches
        assert torch.equal(merged[key], value), key


def test_dare_of_identical_inputs_with_drop_zero_is_the_input(students, tmp_path):
    paths, base = students
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(paths[0].read_bytes())
    merged = _state(
        merge_checkpoints(
            [paths[0], copy],
            tmp_path / "m.safetensors",
            MergeOptions(method="dare", base=base, params={"drop": 0.0}),
        ).out
    )
    for key, value in _state(paths[0]).items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(merged[key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_dare_is_deterministic_per_seed(students, tmp_path):
    paths, base = students

    def run(seed: int, out: str) -> dict[str, torch.Tensor]:
        return _state(
            merge_checkpoints(
                paths,
                tmp_path / out,
                MergeOptions(method="dare", base=base, params={"drop": 0.5, "seed": seed}),
            ).out
        )

    a, b, c = run(1, "a.safetensors"), run(1, "b.safetensors"), run(2, "c.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].numel() > 8)
    _, meta = load_state(tmp_path / "c.safetensors")
    assert meta["provenance"]["merge"] | {"seed": 2, "drop": 0.5, "scale": 1.0} == meta["provenance"]["merge"]


def test_dare_keeps_the_task_vector_in_expectation():
    n, c, drop = 1_000_000, 0.25, 0.7
    base, model = torch.zeros(n), torch.full((n,), c)
    out = dare_merge(base, [model], [1.0], drop=drop, scale=1.0, seeds=[mask_seed(0, 0, "w")])
    kept = out != 0
    # each entry is c / (1 - p) with probability 1 - p, else 0: mean c, std c * sqrt(p / (1 - p))
    sigma = c * math.sqrt(drop / (1 - drop) / n)
    assert abs(float(out.double().mean()) - c) < 5 * sigma
    assert abs(float(kept.double().mean()) - (1 - drop)) < 5 * math.sqrt(drop * (1 - drop) / n)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], c / (1 - drop)))
    # two inputs get independent masks; the same input index and key, the same mask
    other = dare_merge(base, [model], [1.0], drop=drop, scale=1.0, seeds=[mask_seed(0, 1, "w")])
    assert not torch.equal(out != 0, other != 0)
    again = dare_merge(base, [model], [1.0], drop=drop, scale=1.0, seeds=[mask_seed(0, 0, "w")])
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", METHODS)
def test_scan_accepts_exactly_the_methods_that_interpolate(name, students, tmp_path):
    """`interpolates` is a promise: weights (lam, 1 - lam) give lam * A + (1 - lam) * B on the parameters
    (BatchNorm running statistics may be pooled); `merge scan` refuses every method that does not make it."""
    from edgeseg.merge.scan import scan_pair

    paths, base = students
    if not REGISTRY[name].interpolates:
        with pytest.raises(ConfigError, match="straight line"):
            scan_pair(paths[0], paths[1], {}, tmp_path / "scan", method=name, plot=False)
        assert not (tmp_path / "scan").exists()
        return
    out = merge_checkpoints(paths, tmp_path / "m.safetensors", _options(name, base, weights=[0.3, 0.7])).out
    merged, a, b = _state(out), _state(paths[0]), _state(paths[1])
    stats = ("running_mean", "running_var", "num_batches_tracked")
    checked = 0
    for key, value in merged.items():
        if value.dtype.is_floating_point and not key.endswith(stats):
            torch.testing.assert_close(value, 0.3 * a[key] + 0.7 * b[key], rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked > 10
