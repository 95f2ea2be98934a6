"""The test suite's own layout rule: helpers shared between test files live in tests/fixtures/ as pytest plugins
(registered by tests/conftest.py) and are reached through their fixtures. No test file imports a module that lives
in tests/ by bare name, which only works because pytest puts tests/ on sys.path - not in its own code, and not in
the scripts it hands to a subprocess either."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def local_names(folder: Path = TESTS) -> set[str]:
    """What `import X` would find in tests/ if tests/ were on sys.path: its modules and its folders."""
    names = {p.stem for p in folder.glob("*.py")}
    return names | {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}


def _script_imports(text: str) -> list[str]:
    """Top-level module names imported by Python code embedded in a string (a subprocess script)."""
    found = re.findall(
        r"(?:^|;)\s*(?:from\s+([\w.]+)\s+import|import\s+([\w., ]+))", text, flags=re.MULTILINE
    )
    names = []
    for source, imported in found:
        names += [source] if source else [part.split()[0] for part in imported.split(",") if part.strip()]
    return [name.split(".")[0] for name in names]


def bare_local_imports(source: str, local: set[str]) -> list[str]:
    """'line: name' for each import of a name in `local`: import statements, __import__ and
    importlib.import_module with a literal name, and import lines inside string literals."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value:
            names = _script_imports(node.value)
        hits += [f"{node.lineno}: {name}" for name in names if name.split(".")[0] in local]
    return hits


def test_the_check_sees_every_form_of_bare_import() -> None:
    local = {"fakes_here", "shared_here", "plugins_here"}  # not tests/ names: this file passes its own check
    source = '''
import fakes_here
from shared_here import ROOT
import plugins_here.deploy as deploy
H = __import__("fakes_here")
SCRIPT = """
import sys
from fakes_here import ColourSegmenter
"""
import json, importlib
from edgeseg.cli import main
'''
    assert [hit.split(": ")[1] for hit in bare_local_imports(source, local)] == [
        "fakes_here",
        "shared_here",
        "plugins_here.deploy",
        "fakes_here",
        "fakes_here",
    ]


def test_no_test_file_imports_a_module_from_tests_by_bare_name() -> None:
    local = local_names()
    assert {"conftest", "fixtures"} <= local
    offenders = {
        path.name: hits
        for path in sorted(TESTS.glob("test_*.py"))
        if (hits := bare_local_imports(path.read_text(), local))
    }
    assert offenders == {}, f"use the fixtures in tests/fixtures/ instead: {offenders}"
