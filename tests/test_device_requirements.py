"""What the device requirements, extras and Jetson image pin, so JetPack 6 installs resolve to what it has."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements(name: str) -> dict[str, Requirement]:
    lines = (ROOT / "requirements" / name).read_text().splitlines()
    reqs = [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]
    return {r.name: r for r in reqs}


def _allows(req: Requirement, version: str) -> bool:
    return req.specifier.contains(Version(version), prereleases=True)


def test_jetpack6_device_pins() -> None:
    reqs = _requirements("device.txt")
    # JetPack 6 ships CUDA 12.2 / 12.6: cuda-python 13 needs a CUDA 13 driver
    assert _allows(reqs["cuda-python"], "12.9.10") and not _allows(reqs["cuda-python"], "13.0.0")
    # Ubuntu 22.04's python3-opencv is built against numpy 1.x
    assert _allows(reqs["numpy"], "1.26.4") and not _allows(reqs["numpy"], "2.0.0")
    # JetPack 6 runs Python 3.10: tomllib is 3.11+, so tomli there (and only there)
    tomli = reqs["tomli"]
    assert tomli.marker is not None and tomli.marker.evaluate({"python_version": "3.10"})
    assert not tomli.marker.evaluate({"python_version": "3.11"})
    assert "torch" not in reqs and "tensorrt" not in reqs  # TensorRT comes from JetPack's system packages


def test_cpu_box_requirements_have_tomli_and_no_torch() -> None:
    reqs = _requirements("device-cpu.txt")
    assert reqs["tomli"].marker.evaluate({"python_version": "3.10"})  # type: ignore[union-attr]
    assert "torch" not in reqs and {"onnxruntime", "opencv-python-headless"} <= set(reqs)


def test_gpu_extra_declares_the_supported_tensorrt_range() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu = {r.name: r for r in map(Requirement, extras["gpu"])}
    for ok in ("8.6.1", "10.3.0", "11.4.0.106"):
        assert _allows(gpu["tensorrt"], ok)
    assert not _allows(gpu["tensorrt"], "8.5.2") and not _allows(gpu["tensorrt"], "12.0.0")
    assert _allows(gpu["cuda-python"], "12.6.0") and _allows(gpu["cuda-python"], "13.4.4")


def test_jetson_image_checks_what_the_device_commands_import() -> None:
    text = (ROOT / "Dockerfile.jetson").read_text()
    check = text[text.index("python3 -c") :]
    for needed in (
        "cv2",
        "tensorrt",
        "edgeseg.deploy.runtime.backends",
        "edgeseg.deploy.runtime.tensorrt_backend",
        "edgeseg.bench",
        "edgeseg.demo",
        "import_cudart()",
        "load_target",
    ):
        assert needed in check, needed
    assert "r35" not in text.split("FROM")[0].replace("r35.x", "")  # no JetPack 5 tag offered
