"""Deployment target profiles: `export/targets/NAME.toml` (input size, precision, workspace, DLA,
calibration set size) for `edgeseg export --target` and `edgeseg build-engine --target`.

Explicit command-line flags always override the profile. Profiles are looked up in ./export/targets,
then in the edgeseg source tree's export/targets; NAME may also be a path to a .toml file. Torch-free.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgeseg.deploy.runtime.backends import BACKENDS
from edgeseg.errors import ConfigError
from edgeseg.sizes import parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# the runtime a profile targets: a backend of the table that runs exported files (not the torch one)
RUNTIMES = tuple(spec.name for spec in BACKENDS if not spec.needs_torch)
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    runtime: str
    input_size: tuple[int, int]
    precision: str
    workspace_mb: int = 1024
    dla_core: int | None = None
    calib_images: int = 256
    batch: int = 1


# What export / build-engine use when neither a flag nor a --target profile sets a value.
DEFAULTS: dict[str, Any] = {
    "input_size": (512, 1024),
    "batch": 1,
    "workspace_mb": 1024,
    "dla_core": None,
    "calib_images": 256,
}
# `edgeseg export --int8` calibrates in ONNX Runtime on the CPU at export time, where each image costs a full
# float forward pass with histogram collection; 32 images is its default (the INT8 check measures the result).
# A TensorRT build calibrates on the device's GPU, where TensorRT's guidance of a few hundred images is cheap.
EXPORT_CALIB_IMAGES = 32


def setting(name: str, flag: Any, profile: TargetProfile | None, default: Any = None) -> Any:
    """The one precedence rule of `--target`: an explicit flag, else the profile's value, else the default
    (`default` if given, else DEFAULTS[name])."""
    if flag is not None:
        return flag
    if profile is not None:
        return getattr(profile, name)
    return DEFAULTS[name] if default is None else default


TARGETS_ENV = "EDGESEG_TARGETS"


def target_dirs() -> list[Path]:
    """Where target profiles are looked up, first match wins: the folders in $EDGESEG_TARGETS
    (os.pathsep-separated; the Jetson image sets it), ./export/targets, then the source tree's."""
    extra = [Path(p) for p in os.environ.get(TARGETS_ENV, "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parents[2] / "export" / "targets"
    return [*extra, Path.cwd() / "export" / "targets", here]


def list_targets() -> list[str]:
    names = {p.stem for d in target_dirs() if d.is_dir() for p in d.glob("*.toml")}
    return sorted(names)


def parse_target(name: str, data: dict[str, Any], source: str) -> TargetProfile:
    """Validate a profile dict (from TOML); unknown keys are errors, not silently ignored."""
    known = {f.name for f in fields(TargetProfile)} - {"name"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    missing = {"description", "runtime", "input_size", "precision"} - set(data)
    if missing:
        raise ConfigError(f"{source}: missing key(s) {sorted(missing)}")
    if data["runtime"] not in RUNTIMES:
        raise ConfigError(f"{source}: runtime must be one of {', '.join(RUNTIMES)}")
    if data["precision"] not in PRECISIONS:
        raise ConfigError(f"{source}: precision must be one of {', '.join(PRECISIONS)}")
    dla = data.get("dla_core", -1)
    if not isinstance(dla, int) or dla < -1:
        raise ConfigError(f"{source}: dla_core must be -1 (none) or a DLA core index")
    for key in ("workspace_mb", "calib_images", "batch"):
        if key in data and (not isinstance(data[key], int) or data[key] < 1):
            raise ConfigError(f"{source}: {key} must be a positive integer")
    return TargetProfile(
        name=name,
        description=str(data["description"]),
        runtime=data["runtime"],
        input_size=parse_size(data["input_size"], f"{source}: input_size", min_side=32),
        precision=data["precision"],
        workspace_mb=data.get("workspace_mb", 1024),
        dla_core=None if dla < 0 else dla,
        calib_images=data.get("calib_images", 256),
        batch=data.get("batch", 1),
    )


def load_target(name: str) -> TargetProfile:
    """A profile by name (export/targets/NAME.toml) or by path to a .toml file."""
    candidates = [Path(name)] if name.endswith(".toml") else [d / f"{name}.toml" for d in target_dirs()]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ConfigError(
            f"unknown target '{name}'; available: {', '.join(list_targets()) or 'none'} "
            "(export/targets/*.toml) or a path to a .toml profile"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read target profile '{path}': {exc}") from None
    return parse_target(path.stem, data, str(path))
