"""Shared fixtures. Besides the few defined here, each area's helpers are a pytest plugin module in
tests/fixtures/ (data, deploy, uda, demo, tensorrt, hostile, convert), registered below: tests reach them only
through the fixtures those modules define, never by importing them. The modules are loaded from their files,
so nothing depends on tests/ being on sys.path."""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PLUGINS = ("data", "deploy", "uda", "demo", "tensorrt", "hostile", "convert")


def _load_fixture_plugin(name: str) -> ModuleType:
    path = Path(__file__).resolve().parent / "fixtures" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"edgeseg_test_fixtures_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look a class's module up here
    spec.loader.exec_module(module)
    return module


def pytest_configure(config: pytest.Config) -> None:
    for name in FIXTURE_PLUGINS:
        plugin_name = f"edgeseg-fixtures-{name}"
        if not config.pluginmanager.has_plugin(plugin_name):
            config.pluginmanager.register(_load_fixture_plugin(name), plugin_name)


# Python that makes `import torch` fail in the interpreter it runs in: the device side's world
_HIDE_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is hidden in this test")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="session")
def run_without_torch() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run(code, timeout=300)`: run a Python snippet in a fresh interpreter (repo root as cwd) where torch
    cannot be imported."""

    def run(code: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _HIDE_TORCH + code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="module")
def one_thread() -> Iterator[Any]:
    """Tiny models run fastest single-threaded: on a shared 2-core box a second intra-op thread only adds
    spin-wait stalls. Yields the torch module."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def _has_gpu() -> bool:
    """An NVIDIA GPU is usable here, decided WITHOUT torch (the README installs the CPU torch, whose
    torch.cuda.is_available() is False even on a GPU machine, which would skip the GPU tests silently).

    Signals, any of which counts: the CUDA driver library loads and reports a device (cuInit + cuDeviceGetCount,
    also on Jetson, where nvidia-smi may be missing); `nvidia-smi -L` lists a GPU.
    """
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0:
            return True
    smi = shutil.which("nvidia-smi")
    if smi is not None and glob.glob("/dev/nvidia[0-9]*"):
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return listed.returncode == 0 and "GPU" in listed.stdout
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any("gpu" in item.keywords for item in items) or _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (TensorRT/CUDA); none found (libcuda, nvidia-smi)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
