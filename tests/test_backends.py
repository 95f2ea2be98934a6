"""The runtime backend table: every row gets the contract tests, and a new backend is one module + one row."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from edgeseg.deploy.runtime import backends
from edgeseg.deploy.runtime.backends import BACKENDS, BackendSpec, backend_for, get_backend, open_segmenter
from edgeseg.deploy.runtime.segmenter import Segmenter
from edgeseg.errors import RuntimeBackendError

ROOT = Path(__file__).resolve().parents[1]
ROWS = pytest.mark.parametrize("spec", BACKENDS, ids=[s.name for s in BACKENDS])


def test_names_are_unique_and_auto_is_not_a_name() -> None:
    names = [s.name for s in BACKENDS]
    assert len(names) == len(set(names)) and "auto" not in names


@ROWS
def test_row_is_complete(spec: BackendSpec) -> None:
    assert spec.suffixes and len(spec.suffixes) == len(set(spec.suffixes))
    assert all(s.startswith(".") and s == s.lower() and len(s) > 1 for s in spec.suffixes)
    assert spec.install.strip() and ("pip install" in spec.install or "JetPack" in spec.install)
    assert spec.makes.strip() and spec.summary.strip() and spec.module.strip()


@ROWS
def test_row_class_takes_the_common_constructor(spec: BackendSpec) -> None:
    cls = spec.segmenter_class()
    assert issubclass(cls, Segmenter)
    params = inspect.signature(cls.__init__).parameters
    assert {"path", "backend", "size", *spec.options} <= set(params), (spec.name, list(params))
    assert params["backend"].default == spec.name or spec.provider is not None  # ORT rows share one class
    assert isinstance(spec.available(), bool)


def test_each_suffix_has_one_auto_choice() -> None:
    """Rows may share a suffix (.onnx: three ORT providers), but auto resolves it deterministically."""
    for suffix in backends.model_suffixes():
        ranks = [s.auto_rank for s in BACKENDS if suffix in s.suffixes and s.auto_rank is not None]
        assert ranks and len(ranks) == len(set(ranks)), (suffix, ranks)


@ROWS
def test_choosing_by_suffix(spec: BackendSpec) -> None:
    for suffix in spec.suffixes:
        for name in (f"m{suffix}", f"M{suffix.upper()}"):
            assert backend_for(Path(name), spec.name) == spec.name
            assert suffix in get_backend(backend_for(Path(name))).suffixes  # auto picks a row that runs it
    others = [s for s in backends.model_suffixes() if s not in spec.suffixes]
    for suffix in others:
        with pytest.raises(RuntimeBackendError, match="cannot run") as info:
            backend_for(Path(f"m{suffix}"), spec.name)
        assert spec.makes in str(info.value)


def test_unknown_file_type_and_backend_name_the_table() -> None:
    with pytest.raises(RuntimeBackendError, match="cannot tell the model type") as info:
        backend_for(Path("m.pth"))
    assert all(s in str(info.value) for s in backends.model_suffixes())
    with pytest.raises(RuntimeBackendError, match="unknown backend") as info:
        backend_for(Path("m.onnx"), "nonesuch")
    assert all(s.name in str(info.value) for s in BACKENDS)


def test_help_and_listing_come_from_the_table() -> None:
    text = backends.backend_help()
    listing = backends.format_backends()
    for spec in BACKENDS:
        assert spec.name in text and spec.name in listing
        assert all(s in text for s in spec.suffixes)
    assert [r["name"] for r in backends.describe_backends()] == [s.name for s in BACKENDS]


@functools.cache
def _imports_without_torch(run_without_torch: Callable[..., Any]) -> dict[str, Any]:
    """One subprocess, torch hidden: import every row's class, check availability, open a checkpoint."""
    rows = [s.name for s in BACKENDS]
    script = f"""
import json, tempfile, pathlib
from edgeseg.deploy.runtime.backends import get_backend, open_segmenter
from edgeseg.errors import RuntimeBackendError
out = {{}}
for name in {rows!r}:
    spec = get_backend(name)
    spec.segmenter_class()
    row = {{"available": spec.available(), "torch_loaded": "torch" in sys.modules}}
    if spec.needs_torch:
        with tempfile.TemporaryDirectory() as tmp:
            p = pathlib.Path(tmp) / ("m" + spec.suffixes[0])
            p.write_bytes(b"x")
            try:
                open_segmenter(p, backend=name)
            except RuntimeBackendError as exc:
                row["error"] = str(exc)
    out[name] = row
print(json.dumps(out))
"""
    result = run_without_torch(script)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@ROWS
def test_row_imports_without_torch(spec: BackendSpec, run_without_torch) -> None:
    """Every row's module imports with torch absent; a row that needs torch says how to install it."""
    row = _imports_without_torch(run_without_torch)[spec.name]
    assert row["torch_loaded"] is False
    if spec.needs_torch:
        assert row["available"] is False and spec.install in row["error"] and "\n" not in row["error"]


def test_eval_sends_trt_and_engine_files_to_tensorrt(
    fake_tensorrt: Callable[..., ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`edgeseg eval m.trt` goes through the tensorrt row (faked TensorRT), never the safetensors loader."""
    import edgeseg.checkpoint
    from edgeseg.cli import main
    from edgeseg.data.synthetic import render_dataset
    from edgeseg.deploy.runtime import tensorrt_backend

    fake_tensorrt("10.3.0")
    opened: list[str] = []
    original = tensorrt_backend.TensorRTSegmenter.__init__

    def spy(self: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(Path(path).name)
        original(self, path, *args, **kwargs)

    def no_checkpoints(*_a: Any, **_k: Any) -> None:
        raise AssertionError("an engine went to the safetensors loader")

    monkeypatch.setattr(tensorrt_backend.TensorRTSegmenter, "__init__", spy)
    monkeypatch.setattr(edgeseg.checkpoint, "load_model", no_checkpoints)
    render_dataset(tmp_path / "synth", ["fog"], num=1, size=(64, 128), splits={"val": 1})
    for suffix in get_backend("tensorrt").suffixes:
        engine = tmp_path / f"m{suffix}"
        engine.write_bytes(b"not an engine")
        code = main(
            [
                "eval",
                str(engine),
                "--data",
                str(tmp_path / "synth"),
                "--dataset",
                "synthetic",
                "--domain",
                "fog",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "sidecar" in err and "build-engine" in err and "Traceback" not in err, err
    assert opened == [f"m{s}" for s in get_backend("tensorrt").suffixes]


# -- a new backend is one module + one row: a toy one, plugged in by adding its row only --------------------


class ToySegmenter(Segmenter):
    """A model file that is JSON metadata; 'inference' thresholds the blue channel."""

    closed = 0

    def __init__(
        self, path: Any, backend: str = "toy", size: tuple[int, int] | None = None, threads: int | None = None
    ) -> None:
        self.backend = backend
        super().__init__(path, json.loads(Path(path).read_text()), None, None, size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return (batch[..., 0] > 127).astype(np.uint8)

    def close(self) -> None:
        type(self).closed += 1


TOY = BackendSpec(
    name="toy",
    suffixes=(".toy",),
    segmenter=f"{__name__}:ToySegmenter",
    module="json",
    install="pip install nothing",
    makes="write a .toy file",
    auto_rank=1,
    options=("threads",),
    summary="test backend",
)


@pytest.fixture
def toy_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from edgeseg.data.labels import CLASSES, PALETTE

    monkeypatch.setattr(backends, "BACKENDS", (*BACKENDS, TOY))
    path = tmp_path / "m.toy"
    path.write_text(
        json.dumps(
            {
                "num_classes": len(CLASSES),
                "classes": list(CLASSES),
                "palette": [list(c) for c in PALETTE],
                "output": "labels",
                "preprocess": True,
            }
        )
    )
    return path


def test_new_row_is_chosen_opened_and_closed(toy_model: Path) -> None:
    assert backend_for(toy_model) == "toy" and "toy" in backends.available_backends()
    before = ToySegmenter.closed
    with open_segmenter(toy_model, threads=2) as seg:
        assert isinstance(seg, ToySegmenter) and seg.backend == "toy"
        labels = seg.predict([np.full((40, 60, 3), 200, np.uint8)])
        assert labels[0].shape == (40, 60) and (labels[0] == 1).all()
    assert ToySegmenter.closed == before + 1


def test_new_row_runs_through_eval_and_bench_unchanged(
    toy_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeseg.cli import main
    from edgeseg.data.synthetic import render_dataset

    render_dataset(tmp_path / "synth", ["fog"], num=1, size=(64, 128), splits={"val": 1})
    before = ToySegmenter.closed
    assert (
        main(
            [
                "eval",
                str(toy_model),
                "--data",
                str(tmp_path / "synth"),
                "--dataset",
                "synthetic",
                "--domain",
                "fog",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    ), capsys.readouterr().err
    assert json.loads((tmp_path / "e.json").read_text())["model"] == str(toy_model)
    assert (
        main(
            [
                "bench",
                str(toy_model),
                "--backend",
                "toy",
                "--size",
                "64x128",
                "--warmup",
                "0",
                "--iters",
                "2",
                "--no-progress",
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    ), capsys.readouterr().err
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["backend"] == "toy"
    assert ToySegmenter.closed == before + 2  # eval and bench both closed what they opened
