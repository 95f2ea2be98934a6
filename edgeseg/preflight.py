"""Checks every command runs on its output paths before any work starts.

A command that would fail only when it writes its result (after minutes of training or export) fails at
once instead, with one line: an unwritable folder, a file where a folder is expected, an existing folder
given as an output file, or an output that is one of the inputs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from edgeseg.errors import OutputPathError
from edgeseg.io_utils import describe_os_error

PathLike = str | os.PathLike[str]


def _nearest_existing(path: Path) -> Path:
    """The closest ancestor of `path` (or `path` itself) that exists; a file there is reported."""
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def _check_creatable(path: Path, what: str) -> None:
    """`path` can be created: every existing ancestor is a folder and the nearest one accepts a new file."""
    parent = _nearest_existing(path.parent)
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"{what} '{path}' cannot be created: '{parent}' is a file, not a folder")
    # try it for real (permissions, read-only mounts, ACLs and root all answer honestly this way)
    probe = parent / f".edgeseg-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(describe_os_error(exc, parent).replace(str(probe), str(parent))) from exc


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        return False
    return a.resolve() == b.resolve()


def check_output_file(
    path: PathLike | None, inputs: Iterable[PathLike | None] = (), what: str = "output"
) -> None:
    """Fail now if `path` cannot be written as a file, or is one of `inputs` (symlinks resolved)."""
    if path is None:
        return
    path = Path(path)
    if str(path).startswith("builtin:"):
        raise OutputPathError(f"{what} '{path}' names a shipped weights file; write to a normal path")
    if path.is_dir():
        raise OutputPathError(f"{what} '{path}' is an existing folder; give a file name")
    for src in inputs:
        if src is not None and not str(src).startswith("builtin:") and _same_file(path, Path(src)):
            raise OutputPathError(
                f"{what} '{path}' is the input '{src}'; writing it would destroy the input, "
                "give another output name"
            )
    _check_creatable(path, what)


def check_output_dir(
    path: PathLike | None, inputs: Iterable[PathLike | None] = (), what: str = "output folder"
) -> None:
    """Fail now if `path` cannot be used as an output folder (an existing file, a file above it, no permission),
    or is one of `inputs`."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} '{path}' is an existing file; give a folder name")
    for src in inputs:
        if src is not None and not str(src).startswith("builtin:") and _same_file(path, Path(src)):
            raise OutputPathError(f"{what} '{path}' is the input '{src}'; give another output folder")
    if path.is_dir():
        _check_creatable(path / ".x", what)
    else:
        _check_creatable(path, what)


def check_outputs(
    files: Iterable[PathLike | None] = (),
    dirs: Iterable[PathLike | None] = (),
    inputs: Iterable[PathLike | None] = (),
) -> None:
    """Every output file and folder of one command, checked together before any work starts; also refuses
    two outputs that are the same path."""
    inputs = [p for p in inputs if p is not None]
    files = [Path(p) for p in files if p is not None]
    dirs = [Path(p) for p in dirs if p is not None]
    for f in files:
        check_output_file(f, inputs)
    for d in dirs:
        check_output_dir(d, inputs)
    seen: dict[Path, Path] = {}
    for p in [*files, *dirs]:
        key = p.resolve()
        if key in seen:
            raise OutputPathError(f"two outputs are the same path '{p}'; give each its own")
        seen[key] = p
