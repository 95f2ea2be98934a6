"""Every edgeseg module imports on its own (no import cycle, no hidden order dependence), and the deploy
layout keeps its torch boundary: `deploy/runtime` and `deploy/trt` never import from `deploy/export` nor torch
at module level."""

from __future__ import annotations

import ast
import functools
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgeseg

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edgeseg"


def _modules() -> list[str]:
    names = ["edgeseg"]
    for info in pkgutil.walk_packages(edgeseg.__path__, "edgeseg."):
        if not info.name.endswith("__main__"):  # running it is the CLI
            names.append(info.name)
    return sorted(names)


MODULES = _modules()
GROUPS = sorted(
    {
        ".".join(m.split(".")[:3]) if m.startswith("edgeseg.deploy.") else ".".join(m.split(".")[:2])
        for m in MODULES
    }
)

# Each module imported first, alone: edgeseg's own modules are dropped from sys.modules before each import
# (third-party ones stay cached, which keeps this fast), so a cycle that only bites when a module is the
# first one imported shows up as that module's error.
_ALONE = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k == "edgeseg" or k.startswith("edgeseg.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


@functools.cache
def _failures() -> dict[str, str]:
    """One subprocess for all modules (third-party imports are paid once)."""
    result = subprocess.run(
        [sys.executable, "-c", _ALONE, json.dumps(MODULES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("group", GROUPS)
def test_each_module_imports_alone(group: str) -> None:
    failures = {k: v for k, v in _failures().items() if k == group or k.startswith(group + ".")}
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_module_list_covers_the_deploy_layout() -> None:
    for name in (
        "edgeseg.deploy.runtime.backends",
        "edgeseg.deploy.runtime.segmenter",
        "edgeseg.deploy.runtime.tensorrt_backend",
        "edgeseg.deploy.trt.build",
        "edgeseg.deploy.trt.cuda_helpers",
        "edgeseg.deploy.export.onnx_export",
    ):
        assert name in MODULES


def _imports(path: Path, top_level_only: bool) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [
                (node.lineno, f"{node.module}.{a.name}") for a in node.names
            ]
    return found


# device_check runs on a GPU machine and, given --checkpoint where torch is installed, exports first: the one
# module of the device side allowed to import the exporter, and only inside that step.
LAZY_EXPORT_ALLOWED = {"device_check.py"}


@pytest.mark.parametrize("package", ["runtime", "trt"])
def test_device_side_packages_never_reach_into_export_or_torch(package: str) -> None:
    problems = []
    for path in sorted((PACKAGE / "deploy" / package).glob("*.py")):
        anywhere = path.name not in LAZY_EXPORT_ALLOWED
        for line, name in _imports(path, top_level_only=not anywhere):
            if name.startswith("edgeseg.deploy.export"):
                problems.append(f"{path.name}:{line} imports {name} (the torch side)")
        for line, name in _imports(path, top_level_only=True):
            if name == "torch" or name.startswith("torch."):
                problems.append(f"{path.name}:{line} imports torch at module level")
    assert not problems, problems
