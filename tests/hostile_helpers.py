"""Corrupt and hostile artefacts for tests/test_hostile.py: tiny models, broken checkpoints and ONNX files,
foreign weight files of the wrong shape, a tiny dataset, an empty video - each built once per session."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
from deploy_helpers import _ROOT, exported, tiny_checkpoint

HOSTILE = _ROOT / "hostile"


def root() -> Path:
    HOSTILE.mkdir(exist_ok=True)
    return HOSTILE


@functools.cache
def second_checkpoint() -> Path:
    """Another segformer_tiny (different weights) to merge with the first."""
    import torch

    from edgeseg.checkpoint import save_model
    from edgeseg.models.registry import create_model

    torch.manual_seed(1)
    path = root() / "second.safetensors"
    save_model(create_model("segformer_tiny", num_classes=19), path)
    return path


@functools.cache
def five_class_checkpoint() -> Path:
    """A well-formed model that predicts 5 classes (the datasets have 19)."""
    import torch

    from edgeseg.checkpoint import save_model
    from edgeseg.models.registry import create_model

    torch.manual_seed(2)
    path = root() / "five_classes.safetensors"
    save_model(create_model("segformer_tiny", num_classes=5), path)
    return path


def _state_and_meta() -> tuple[dict[str, Any], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(tiny_checkpoint()), "pt") as f:
        keys = list(f.keys())  # noqa: SIM118 - safe_open is not a dict
        return {k: f.get_tensor(k) for k in keys}, dict(f.metadata())


def write_checkpoint(name: str, tensors: dict[str, Any] | None = None, **meta_raw: Any) -> Path:
    """The tiny checkpoint with some tensors replaced and some metadata values replaced by raw strings
    (already JSON-encoded, or deliberately not); a value of None removes the field."""
    from safetensors.torch import save_file

    state, meta = _state_and_meta()
    state.update(tensors or {})
    for key, value in meta_raw.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path = root() / f"{name}.safetensors"
    save_file(state, str(path), metadata=meta)
    return path


@functools.cache
def broken_checkpoints() -> dict[str, Path]:
    """name -> a checkpoint that must be refused with one line."""
    import torch

    state, _ = _state_and_meta()
    first = next(k for k, v in state.items() if v.is_floating_point() and v.ndim >= 2)
    nan = state[first].clone()
    nan.view(-1)[0] = float("nan")
    inf = state[first].clone()
    inf.view(-1)[-1] = float("inf")
    out = {
        "nan-weights": write_checkpoint("nan", {first: nan}),
        "inf-weights": write_checkpoint("inf", {first: inf}),
        "int-weights": write_checkpoint("int", {first: state[first].round().to(torch.int32)}),
        "classes-is-number": write_checkpoint("classes_num", classes="5"),
        "mean-is-strings": write_checkpoint("mean_str", mean='["a", "b", "c"]'),
        "std-zero": write_checkpoint("std_zero", std="[0, 1, 1]"),
        "version-is-number": write_checkpoint("version_num", format_version="2"),
        "num-classes-is-string": write_checkpoint("nc_str", num_classes='"19"'),
        "palette-is-string": write_checkpoint("pal_str", palette='"red"'),
        "arch-missing": write_checkpoint("no_arch", arch=None),
        "meta-not-json": write_checkpoint("not_json", classes="[unclosed"),
    }
    truncated = root() / "truncated.safetensors"
    data = tiny_checkpoint().read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    out["truncated"] = truncated
    garbage = root() / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a checkpoint at all" * 10)
    out["garbage"] = garbage
    return out


@functools.cache
def onnx_model() -> Path:
    return exported("labels")[0]


@functools.cache
def broken_onnx() -> dict[str, Path]:
    """name -> an ONNX file whose edgeseg metadata is malformed."""
    import onnx

    out: dict[str, Path] = {}
    changes = {
        "version-is-string": {"format_version": '"1"'},
        "classes-is-number": {"classes": "19"},
        "mean-is-strings": {"mean": '["a", "b", "c"]'},
        "output-unknown": {"output": '"pixels"'},
        "input-size-negative": {"input_size": "[-64, 128]"},
    }
    for name, change in changes.items():
        model = onnx.load(str(onnx_model()))
        for prop in model.metadata_props:
            if prop.key in change:
                prop.value = change[prop.key]
        path = root() / f"{name}.onnx"
        onnx.save(model, str(path))
        out[name] = path
    trunc = root() / "truncated.onnx"
    data = onnx_model().read_bytes()
    trunc.write_bytes(data[: len(data) // 3])
    out["truncated"] = trunc
    return out


@functools.cache
def foreign_weights() -> dict[str, Path]:
    """name -> a foreign .pth (or HF folder) whose structure is wrong; never a pickle of arbitrary objects
    except the one that must be refused."""
    import torch

    folder = root() / "foreign"
    folder.mkdir(exist_ok=True)
    tensors = {f"patch_embed{s + 1}.proj.weight": torch.zeros(8, 3, 7, 7) for s in range(4)}
    out = {}

    def save(name: str, obj: Any) -> None:
        out[name] = folder / f"{name}.pth"
        torch.save(obj, out[name])

    save("list-not-dict", [torch.zeros(3), torch.zeros(4)])
    save("dict-of-lists", {"state_dict": {"a": [1, 2, 3]}})
    save("empty-dict", {})
    save("scalar-weights", {k: torch.tensor(1.0) for k in tensors})
    save("unknown-keys", {"foo.weight": torch.zeros(3, 3), "bar.bias": torch.zeros(3)})
    # an mmseg checkpoint whose decode head lacks most of its keys
    save(
        "missing-head-keys",
        {
            **{f"backbone.{k}": v for k, v in tensors.items()},
            "decode_head.linear_fuse.conv.weight": torch.zeros(8, 32, 1, 1),
        },
    )
    pickle_path = folder / "pickle-payload.pth"
    import pickle

    pickle_path.write_bytes(pickle.dumps(_Payload()))
    out["pickle-payload"] = pickle_path
    hf = folder / "hf-list-config"
    hf.mkdir(exist_ok=True)
    (hf / "config.json").write_text(json.dumps([1, 2, 3]))
    out["hf-config-is-list"] = hf
    return out


class _Payload:
    """Unpickling this would run code; torch.load(weights_only=True) must refuse it."""

    def __reduce__(self):  # pragma: no cover - never called by edgeseg
        return (print, ("PWNED",))


@functools.cache
def dataset() -> Path:
    """A rendered synthetic benchmark (source + city, 64x128)."""
    from uda_tiny import render_tiny

    return render_tiny(root() / "synth")


@functools.cache
def small_image_dataset() -> Path:
    """A cityscapes-layout dataset whose images are 16x24: smaller than the network's stride."""
    import cv2

    base = root() / "small_cs"
    rng = np.random.default_rng(0)
    for i in range(2):
        fid = f"aachen_{i:06d}_000019"
        img = base / "leftImg8bit" / "val" / "aachen" / f"{fid}_leftImg8bit.png"
        lab = base / "gtFine" / "val" / "aachen" / f"{fid}_gtFine_labelTrainIds.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        lab.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img), rng.integers(0, 255, (16, 24, 3), dtype=np.uint8))
        cv2.imwrite(str(lab), rng.integers(0, 19, (16, 24), dtype=np.uint8))
    return base


@functools.cache
def empty_video() -> Path:
    """A container with zero frames."""
    import cv2

    path = root() / "empty.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 64))
    writer.release()
    if not path.exists() or path.stat().st_size == 0:
        path.write_bytes(b"")
    return path


@functools.cache
def image_folder() -> Path:
    """A folder with two 64x128 frames (a demo source)."""
    import cv2

    folder = root() / "frames"
    folder.mkdir(exist_ok=True)
    for i in range(2):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((64, 128, 3), 40 * i, np.uint8))
    return folder


@functools.cache
def unwritable_dir() -> Path:
    """A folder nobody can create files in, root included: a read-only bind is not available in a test, but
    /sys refuses new files to every user (EACCES) while `os.access` says it is writable."""
    return Path("/sys")
