"""The runtime interface: backends from file types, pre/post-processing, clear errors, no torch needed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest

from edgeseg.deploy.runtime.backends import (
    available_backends,
    backend_for,
    open_segmenter,
    segmenter_predictor,
)
from edgeseg.deploy.runtime.calibration import synthetic_frames
from edgeseg.deploy.runtime.preprocess import normalize_batch, resize_labels, scores_to_labels
from edgeseg.errors import InputPathError, RuntimeBackendError

ROOT = Path(__file__).resolve().parents[1]


def test_normalize_batch_is_rgb_mean_std_nchw() -> None:
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[..., 0] = 10  # blue
    frame[..., 2] = 200  # red
    batch = normalize_batch([frame], (4, 6), mean=(100.0, 50.0, 0.0), std=(2.0, 1.0, 10.0))
    assert batch.shape == (1, 3, 4, 6) and batch.dtype == np.float32
    assert np.allclose(batch[0, 0], (200 - 100) / 2) and np.allclose(batch[0, 1], -50.0)
    assert np.allclose(batch[0, 2], 1.0)


def test_scores_to_labels_matches_torch_bilinear_then_argmax() -> None:
    import torch
    import torch.nn.functional as F

    scores = np.random.default_rng(0).standard_normal((7, 9, 13)).astype(np.float32)
    ours = scores_to_labels(scores, (36, 52), np.dtype(np.uint8))
    ref = (
        F.interpolate(torch.from_numpy(scores)[None], size=(36, 52), mode="bilinear", align_corners=False)
        .argmax(1)[0]
        .numpy()
    )
    assert ours.dtype == np.uint8 and ours.shape == (36, 52)
    assert (ours == ref).mean() > 0.999


def test_resize_labels_nearest_keeps_ids() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    big = resize_labels(labels, (6, 8))
    assert big.shape == (6, 8) and set(np.unique(big)) == set(range(12))
    wide = resize_labels(labels.astype(np.int32) + 300, (6, 8))
    assert wide.dtype == np.int32 and (wide == big.astype(np.int32) + 300).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["labels", "logits", "probs", "preprocess", "dynamic"])
def test_onnx_segmenter_predicts_labels_at_frame_size(deploy: SimpleNamespace, name: str) -> None:
    path, _ = deploy.exported(name)
    seg = open_segmenter(path)
    assert seg.backend == "onnxruntime-cpu"
    assert seg.output_kind == ("labels" if name in ("preprocess", "dynamic") else name)
    assert seg.input_size == (None if name == "dynamic" else deploy.SIZE)
    assert len(seg.classes) == 19 and len(seg.palette) == 19
    frames = synthetic_frames(2, (90, 150), seed=1) + synthetic_frames(1, deploy.SIZE, seed=2)
    labels = seg.predict(frames)
    assert [lab.shape for lab in labels] == [(90, 150), (90, 150), deploy.SIZE]
    assert all(lab.dtype == np.uint8 and lab.max() < 19 for lab in labels)


@pytest.mark.slow
def test_output_kinds_agree_with_each_other_and_with_torch(deploy: SimpleNamespace) -> None:
    """labels/logits/preprocess graphs and the torch backend give the same labels (frame = input size)."""
    frames = synthetic_frames(2, deploy.SIZE, seed=9)
    ref = open_segmenter(deploy.tiny_checkpoint()).predict(frames)
    for name in ("labels", "logits", "preprocess"):
        out = open_segmenter(deploy.exported(name)[0]).predict(frames)
        for a, b in zip(out, ref, strict=True):
            assert (a == b).mean() >= 0.999, name


@pytest.mark.slow
def test_segmenter_pipeline_pieces_compose(deploy: SimpleNamespace) -> None:
    seg = open_segmenter(deploy.exported("labels")[0])
    frames = synthetic_frames(3, (70, 100), seed=4)
    batch = seg.preprocess(frames[:1])
    assert batch.shape == (1, 3, *deploy.SIZE) and batch.dtype == np.float32
    raw = seg.infer(batch)
    assert raw.shape == (1, *deploy.SIZE) and raw.dtype == np.uint8
    (lab,) = seg.postprocess(raw, [(70, 100)])
    assert lab.shape == (70, 100)
    seg.synchronize()
    # batch-1 model, 3 frames: predict runs them in chunks
    assert [x.shape for x in seg.predict(frames)] == [(70, 100)] * 3
    with segmenter_predictor(deploy.exported("labels")[0]) as (
        predictor,
        meta,
    ):  # what evaluation code plugs in
        assert (predictor(frames[0]) == lab).all() and meta["output"] == "labels"


@pytest.mark.slow
def test_wrong_input_size_is_one_clear_line(deploy: SimpleNamespace) -> None:
    seg = open_segmenter(deploy.exported("labels")[0])
    with pytest.raises(RuntimeBackendError, match=r"expects input 1x3x64x128 float32, got 1x3x32x32"):
        seg.infer(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(RuntimeBackendError, match="exported for 64x128"):
        open_segmenter(deploy.exported("labels")[0], size=(128, 256))
    with pytest.raises(RuntimeBackendError, match="BGR uint8 HxWx3"):
        seg.predict([np.zeros((10, 10), np.float32)])


@pytest.mark.slow
def test_truncated_and_foreign_onnx_files(deploy: SimpleNamespace) -> None:
    path, _ = deploy.exported("labels")
    folder = deploy.scratch("broken-files")
    truncated = folder / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(RuntimeBackendError, match="truncated") as info:
        open_segmenter(truncated)
    assert "\n" not in str(info.value)
    foreign = folder / "foreign.onnx"
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    with pytest.raises(RuntimeBackendError, match="no edgeseg metadata"):
        open_segmenter(foreign)


def test_backend_choice_from_file_type(tmp_path: Path) -> None:
    assert backend_for(Path("m.engine")) == "tensorrt"
    assert backend_for(Path("m.plan")) == "tensorrt"
    assert backend_for(Path("m.safetensors")) == "torch"
    assert backend_for(Path("m.onnx")) in ("onnxruntime-cpu", "onnxruntime-cuda")
    assert backend_for(Path("m.onnx"), "onnxruntime-trt") == "onnxruntime-trt"
    with pytest.raises(RuntimeBackendError, match="build-engine"):
        backend_for(Path("m.onnx"), "tensorrt")
    assert backend_for(Path("m.onnx"), "openvino") == "openvino"
    assert backend_for(Path("m.xml")) == "openvino"
    with pytest.raises(RuntimeBackendError, match="unknown backend"):
        backend_for(Path("m.onnx"), "tflite")
    with pytest.raises(RuntimeBackendError, match="cannot tell the model type"):
        backend_for(Path("m.pth"))
    with pytest.raises(InputPathError):
        open_segmenter(tmp_path / "missing.onnx")
    assert "onnxruntime-cpu" in available_backends()


def test_missing_provider_is_refused_not_silently_replaced(deploy: SimpleNamespace) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    path, _ = deploy.exported("labels")
    with pytest.raises(RuntimeBackendError, match="CUDAExecutionProvider"):
        open_segmenter(path, backend="onnxruntime-cuda")


def test_engine_without_sidecar_is_refused(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really an engine")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeBackendError, match="TensorRT is not installed"):
            open_segmenter(engine)
        return
    with pytest.raises(RuntimeBackendError, match="rebuild"):  # pragma: no cover - machines with TensorRT
        open_segmenter(engine)


@pytest.mark.slow
def test_runtimes_import_and_run_without_torch(deploy: SimpleNamespace, run_without_torch) -> None:
    """ONNX Runtime and TensorRT backends (and engine-build logic) import and run with torch hidden."""
    path, _ = deploy.exported("preprocess")
    dyn, _ = deploy.exported("dynamic")
    script = f"""
import json, numpy as np
import edgeseg.cli, edgeseg.deploy.runtime.backends as rt, edgeseg.deploy.runtime.tensorrt_backend
import edgeseg.deploy.trt.build, edgeseg.deploy.trt.engine_meta, edgeseg.deploy.targets
import edgeseg.deploy.runtime.calibration, edgeseg.deploy.export.quantize
from edgeseg.deploy.runtime.calibration import synthetic_frames
out = {{}}
for p in [{str(path)!r}, {str(dyn)!r}]:
    seg = rt.open_segmenter(p)
    labels = seg.predict(synthetic_frames(2, (50, 90)))
    out[seg.meta["output"] + str(seg.input_size)] = [list(l.shape) for l in labels]
try:
    import torch
except ImportError:
    out["torch"] = "hidden"
out["backends"] = rt.available_backends()
assert "torch" not in out["backends"] and "onnxruntime-cpu" in out["backends"]
out["loaded"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps(out))
"""
    result = run_without_torch(script)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["torch"] == "hidden" and out["loaded"] == []
    assert out[f"labels{deploy.SIZE}"] == [[50, 90], [50, 90]] and out["labelsNone"] == [[50, 90], [50, 90]]


@pytest.mark.slow
def test_torch_backend_reads_checkpoint_meta(deploy: SimpleNamespace) -> None:
    seg = open_segmenter(deploy.tiny_checkpoint(), size=(64, 96))
    assert seg.backend == "torch" and seg.output_kind == "logits" and seg.input_size is None
    frame = cv2.resize(synthetic_frames(1, deploy.SIZE)[0], (120, 80))
    raw = seg.infer(seg.preprocess([frame]))
    assert raw.shape == (1, 19, 16, 24)
    assert seg.predict([frame])[0].shape == (80, 120)
