"""Shared, cached tiny exports for the export / runtime tests (one process exports each variant once)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

SIZE = (64, 128)
_ROOT = Path(tempfile.mkdtemp(prefix="edgeseg-deploy-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

# name -> ExportConfig keyword arguments (slim is exercised by "labels"; the rest skip it for speed)
VARIANTS: dict[str, dict[str, object]] = {
    "labels": {},
    "logits": {"output": "logits", "slim": False},
    "probs": {"output": "probs", "slim": False},
    "preprocess": {"preprocess": True, "slim": False},
    "dynamic": {"dynamic": True, "output": "labels", "slim": False},
    "fp16": {"precision": "fp16", "slim": False},
}


@functools.cache
def tiny_checkpoint() -> Path:
    """segformer_tiny with non-trivial BatchNorm statistics (so the BN folding is really exercised)."""
    import torch

    from edgeseg.checkpoint import save_model
    from edgeseg.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("segformer_tiny", num_classes=19)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    path = _ROOT / "tiny.safetensors"
    save_model(model, path)
    return path


@functools.cache
def exported(name: str):  # -> (Path, ExportReport)
    from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx

    cfg = ExportConfig(size=SIZE, parity_images=2, **VARIANTS[name])  # type: ignore[arg-type]
    out = _ROOT / f"{name}.onnx"
    return out, export_onnx(tiny_checkpoint(), out, cfg)


@functools.cache
def calib_dir(n: int = 6) -> Path:
    import cv2

    from edgeseg.deploy.runtime.calibration import synthetic_frames

    folder = _ROOT / "calib"
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(synthetic_frames(n, (80, 160), seed=11)):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), frame)
    return folder


def scratch(name: str) -> Path:
    path = _ROOT / name
    path.mkdir(exist_ok=True)
    return path


@functools.cache
def exported_int8(flavour: str):  # -> (Path, ExportReport); flavour: onnxruntime | tensorrt
    from edgeseg.deploy.export.onnx_export import ExportConfig, export_onnx

    cfg = ExportConfig(
        size=SIZE,
        parity_images=2,
        precision="int8",
        calib_dir=calib_dir(),
        calib_images=4,
        int8_for=flavour,
        slim=False,
    )
    out = _ROOT / f"int8_{flavour}.onnx"
    return out, export_onnx(tiny_checkpoint(), out, cfg)
