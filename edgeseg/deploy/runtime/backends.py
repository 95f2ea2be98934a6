"""The one table of runtime backends. It drives the choice of backend for a file (`backend_for`), the
listing (`--backend` help, `edgeseg info --backends`, error messages), `open_segmenter` and the CLI.

A new backend is one module under `edgeseg/deploy/runtime/` (a `Segmenter` subclass) plus one row here
(the `openvino` row below was added exactly so).

Torch-free and cheap to import: a row names its class by import path, loaded only when it is used.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import InputPathError, RuntimeBackendError

if TYPE_CHECKING:
    from edgeseg.deploy.runtime.segmenter import Segmenter

_RUNTIME = "edgeseg.deploy.runtime"


@dataclass(frozen=True)
class BackendSpec:
    """One runtime backend.

    name       the --backend value
    suffixes   model files it runs (lower case, with the dot)
    segmenter  "module:Class" of its Segmenter subclass, imported only when the backend is used
    module     the Python package it needs (import checks only when listing what is available)
    install    how to install what it needs (one line, shown when it is missing)
    makes      how to get a file it runs (shown when it is given a file it cannot run)
    provider   the ONNX Runtime execution provider (or device) it runs on, where that applies
    needs_torch  whether it imports torch (only when opening a model: every module imports without it)
    auto_rank  for `--backend auto`: among the rows that run a suffix, the lowest available rank wins;
               None = chosen only by name
    options    the keyword options of `open_segmenter` it honours (others are not passed to it)
    summary    one line for listings
    """

    name: str
    suffixes: tuple[str, ...]
    segmenter: str
    module: str
    install: str
    makes: str
    provider: str | None = None
    needs_torch: bool = False
    auto_rank: int | None = None
    options: tuple[str, ...] = ()
    summary: str = ""

    def segmenter_class(self) -> type[Segmenter]:
        module, _, cls = self.segmenter.partition(":")
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]

    def available(self) -> bool:
        """Usable here, from import checks (the provider list for ONNX Runtime); torch is never imported."""
        return self.segmenter_class().is_available(self)


_ORT = f"{_RUNTIME}.onnxruntime_backend:OnnxRuntimeSegmenter"
_ORT_MAKES = "ONNX Runtime backends run .onnx files; export one with `edgeseg export`"

BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        name="onnxruntime-cpu",
        suffixes=(".onnx",),
        segmenter=_ORT,
        module="onnxruntime",
        provider="CPUExecutionProvider",
        install="pip install 'edgeseg[cpu]' (onnxruntime)",
        makes=_ORT_MAKES,
        auto_rank=2,
        options=("threads",),
        summary="ONNX Runtime on the CPU",
    ),
    BackendSpec(
        name="onnxruntime-cuda",
        suffixes=(".onnx",),
        segmenter=_ORT,
        module="onnxruntime",
        provider="CUDAExecutionProvider",
        install="pip install 'edgeseg[gpu]' (onnxruntime-gpu)",
        makes=_ORT_MAKES,
        auto_rank=1,
        options=("threads",),
        summary="ONNX Runtime on an NVIDIA GPU",
    ),
    BackendSpec(
        name="onnxruntime-trt",
        suffixes=(".onnx",),
        segmenter=_ORT,
        module="onnxruntime",
        provider="TensorrtExecutionProvider",
        install="pip install 'edgeseg[gpu]' (onnxruntime-gpu and tensorrt)",
        makes=_ORT_MAKES,
        options=("threads",),
        summary="ONNX Runtime's TensorRT provider (engines cached beside the model)",
    ),
    BackendSpec(
        name="tensorrt",
        suffixes=(".engine", ".plan", ".trt"),
        segmenter=f"{_RUNTIME}.tensorrt_backend:TensorRTSegmenter",
        module="tensorrt",
        install="pip install tensorrt cuda-python (on a Jetson: JetPack's TensorRT)",
        makes="build an engine first: edgeseg build-engine model.onnx --out model.engine",
        auto_rank=1,
        summary="native TensorRT engines from `edgeseg build-engine`",
    ),
    BackendSpec(
        name="torch",
        suffixes=(".safetensors",),
        segmenter=f"{_RUNTIME}.torch_backend:TorchSegmenter",
        module="torch",
        needs_torch=True,
        install="pip install torch (a workstation; on a device, `edgeseg export` and run the .onnx file)",
        makes="the torch backend runs edgeseg .safetensors checkpoints",
        auto_rank=1,
        options=("device",),
        summary="edgeseg checkpoints in PyTorch (CUDA when available)",
    ),
    BackendSpec(
        name="openvino",
        suffixes=(".onnx", ".xml"),
        segmenter=f"{_RUNTIME}.openvino_backend:OpenVINOSegmenter",
        module="openvino",
        provider="CPU",
        install="pip install 'edgeseg[openvino]' (openvino)",
        makes="OpenVINO runs .onnx files and IR from `edgeseg export --for openvino --out model.xml`",
        auto_rank=3,
        options=("threads",),
        summary="OpenVINO on the CPU (bf16 / INT8 IR from `edgeseg export --for openvino`)",
    ),
)


def backend_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in BACKENDS)


def get_backend(name: str) -> BackendSpec:
    for spec in BACKENDS:
        if spec.name == name:
            return spec
    raise RuntimeBackendError(f"unknown backend '{name}'; choose auto or one of {', '.join(backend_names())}")


def model_suffixes() -> tuple[str, ...]:
    """Every model file suffix some backend runs, in table order."""
    return tuple(dict.fromkeys(s for spec in BACKENDS for s in spec.suffixes))


def available_backends() -> list[str]:
    """Backends usable here (import checks only: neither torch nor tensorrt is imported)."""
    return [spec.name for spec in BACKENDS if spec.available()]


def backend_for(path: Path, backend: str = "auto") -> str:
    """The backend a file runs with: `backend` if it runs the file type, else the auto choice for it."""
    suffix = Path(path).suffix.lower()
    runs = [spec for spec in BACKENDS if suffix in spec.suffixes]
    if not runs:
        raise RuntimeBackendError(
            f"cannot tell the model type of '{Path(path).name}': expected one of "
            f"{', '.join(model_suffixes())} (backends: {', '.join(backend_names())})"
        )
    if backend == "auto":
        ranked = sorted((s for s in runs if s.auto_rank is not None), key=lambda s: s.auto_rank or 0)
        if not ranked:
            raise RuntimeBackendError(
                f"'{Path(path).name}' needs an explicit backend: one of {', '.join(s.name for s in runs)}"
            )
        chosen = next(
            (s for s in ranked[:-1] if s.available()), ranked[-1]
        )  # the last one says what to install
        return chosen.name
    spec = get_backend(backend)
    if spec not in runs:
        raise RuntimeBackendError(f"backend {backend} cannot run '{Path(path).name}'; {spec.makes}")
    return spec.name


def open_segmenter(
    path: str | os.PathLike[str], backend: str = "auto", size: tuple[int, int] | None = None, **options: Any
) -> Segmenter:
    """Open a model file with the right backend; use it as a context manager (or call close()).
    `size` = inference (h, w) for dynamic-size models (must match a fixed-size model's own size).
    `options`: those the chosen backend's row lists, e.g. threads= (ONNX Runtime), device= (torch)."""
    known = {o for spec in BACKENDS for o in spec.options}
    if set(options) - known:
        raise TypeError(
            f"unknown open_segmenter option(s) {sorted(set(options) - known)}; known: {sorted(known)}"
        )
    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"model file '{path}' does not exist; check the path")
    spec = get_backend(backend_for(path, backend))
    mine = {k: v for k, v in options.items() if k in spec.options}
    return spec.segmenter_class()(path, backend=spec.name, size=size, **mine)


@contextmanager
def segmenter_predictor(
    path: str | os.PathLike[str], backend: str = "auto", size: tuple[int, int] | None = None, **options: Any
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """`with segmenter_predictor(p) as (predictor, meta):` for evaluation code: predictor(bgr uint8 HxWx3)
    -> HxW labels, through any backend (`edgeseg eval` on .onnx / .engine / .safetensors); closed at exit."""
    with open_segmenter(path, backend=backend, size=size, **options) as seg:
        yield (lambda bgr: seg.predict([bgr])[0]), dict(seg.meta)


def backend_help() -> str:
    """The --backend help text, from the table."""
    rows = ", ".join(f"{spec.name} ({'/'.join(spec.suffixes)})" for spec in BACKENDS)
    return (
        f"runtime backend (auto: chosen from the file type; {rows}); `edgeseg info --backends` lists what is "
        "installed here"
    )


def describe_backends() -> list[dict[str, Any]]:
    """The table as plain rows for listings (`edgeseg info --backends`), with availability here."""
    return [
        {
            "name": spec.name,
            "suffixes": list(spec.suffixes),
            "available": spec.available(),
            "auto": spec.auto_rank is not None,
            "needs_torch": spec.needs_torch,
            "install": spec.install,
            "summary": spec.summary,
        }
        for spec in BACKENDS
    ]


def format_backends() -> str:
    """The table as text: name, file types, installed here or how to install, what it is."""
    lines = []
    for row in describe_backends():
        state = "available" if row["available"] else f"missing: {row['install']}"
        lines.append(f"{row['name']:17s} {'/'.join(row['suffixes']):22s} {row['summary']}\n{'':17s} {state}")
    return "\n".join(lines)
