"""CLI plumbing: usage errors and user errors are one message and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeseg.cli import main


@pytest.mark.parametrize(
    "args",
    [["no-such-command"], ["info", "--no-such-option"], ["info", "--size", "abc", "--arch", "segformer_b0"]],
)
def test_bad_usage_exits_nonzero_without_traceback(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) != 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.strip()


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "convert" in capsys.readouterr().out


def test_console_entry_point_in_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgeseg", "info", "--arch", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown model 'nope'")
    assert "Traceback" not in result.stderr


def test_atomic_writes_respect_umask(tmp_path) -> None:
    import os

    from edgeseg.io_utils import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
