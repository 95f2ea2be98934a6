"""Atomic file writes: an interrupted or failed run never leaves a half-written output behind.

What "atomic" covers (the promise the README states):

- Every file edgeseg writes is first written to a temp file in the same folder, named
  `.<name>.edgeseg-tmp-<pid>-<token><suffix>`, flushed and fsync'ed, given the mode the umask asks
  for (0644 under the usual 022, not mkstemp's 0600) and then renamed onto the final name. A reader
  sees the old file or the complete new one, never a torn one, whatever kills the process.
- A command that writes several files into one output folder (merge-export, merge scan, merge split,
  data synth) builds them in a staging folder `.<name>.edgeseg-stage-<pid>-<token>` beside it and moves
  them in only when everything succeeded: a failed run leaves neither a new folder nor a mix of old
  and new files.
- A failure or SIGTERM / Ctrl-C removes the temp files and staging folders of the run. SIGKILL (kill -9)
  cannot be caught: its temp files stay behind, and the next edgeseg run that writes into the same
  folder removes those whose process is gone.
- OS errors while writing (no permission, disk full, a directory where a file should go) become one
  `OutputPathError` line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgeseg.errors import InputPathError, OutputPathError

TMP_TAG = ".edgeseg-tmp-"
STAGE_TAG = ".edgeseg-stage-"
OLD_TAG = ".edgeseg-old-"
_OWNED = re.compile(r"^\.(?P<name>.+)(?P<tag>\.edgeseg-(?:tmp|stage|old)-)(?P<pid>\d+)-[0-9a-f]+")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _owned_name(target: Path, tag: str, suffix: str = "") -> Path:
    return target.parent / f".{target.name}{tag}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def temp_path_for(target: str | os.PathLike[str]) -> Path:
    """A fresh temp name beside `target` in the recognisable pattern (keeps the suffix), for writers that cannot
    use `atomic_path` (a video writer that renames on close); stale ones of this folder are cleaned first."""
    target = Path(target)
    clean_stale_temps_once(target.parent)
    return _owned_name(target, TMP_TAG, target.suffix)


def describe_os_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line for an OS error on `path`, with what to do about it."""
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or str(exc)
    hint = {
        errno.EACCES: "check the folder's permissions or choose another --out",
        errno.EPERM: "check the folder's permissions or choose another --out",
        errno.ENOSPC: "free disk space or write elsewhere",
        errno.EDQUOT: "free disk space or write elsewhere",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.EISDIR: "give a file name, not a folder",
        errno.ENOTDIR: "a path component is a file, not a folder",
        errno.ENAMETOOLONG: "use a shorter path",
    }.get(exc.errno or -1, "check the path")
    return f"cannot write '{where}': {reason}; {hint}"


_CLEANED: set[str] = set()


def clean_stale_temps_once(folder: str | os.PathLike[str]) -> None:
    """`clean_stale_temps` the first time this process writes into `folder` (a dead pid stays dead)."""
    key = os.path.abspath(folder)
    if key not in _CLEANED:
        _CLEANED.add(key)
        clean_stale_temps(folder)


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files and staging folders in `folder` left by edgeseg processes that no longer exist
    (a SIGKILL'ed run). A folder set aside by a swap the kill interrupted is put back. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _OWNED.match(entry.name)
        if m is None or _pid_alive(int(m.group("pid"))):
            continue
        path = Path(entry.path)
        final = folder / m.group("name")
        try:
            if m.group("tag") == OLD_TAG and not final.exists():
                os.replace(path, final)  # killed between the two renames of a swap: restore the old output
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def _fsync_path(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_target(target: Path) -> None:
    if target.is_dir():
        raise OutputPathError(f"output '{target}' is an existing folder; give a file name")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds.

    The temp file lives in the same directory so the final `os.replace` is atomic on POSIX; it keeps
    `target`'s suffix (some writers pick the format from it). The file is fsync'ed before the rename and
    gets the mode the umask asks for. OS errors become one `OutputPathError` line."""
    target = Path(target)
    _check_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(describe_os_error(exc, target)) from exc
    clean_stale_temps_once(target.parent)
    tmp_path = _owned_name(target, TMP_TAG, target.suffix)
    try:
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_current_umask())
        os.close(fd)
        os.chmod(tmp_path, 0o666 & ~_current_umask())  # explicit: some file systems ignore the open mode
    except OSError as exc:
        raise OutputPathError(describe_os_error(exc, target)) from exc
    try:
        yield tmp_path
        try:
            _fsync_path(tmp_path)
            os.chmod(
                tmp_path, 0o666 & ~_current_umask()
            )  # again: some writers (safetensors) recreate the file
            os.replace(tmp_path, target)
        except OSError as exc:
            raise OutputPathError(describe_os_error(exc, target)) from exc
    except OSError as exc:  # the writer inside the block hit the file system (disk full, ...)
        if exc.filename is not None and Path(exc.filename) != tmp_path:  # an input it read, not our output
            raise InputPathError(f"cannot read '{exc.filename}': {exc.strerror or exc}") from exc
        exc.filename = str(target)
        raise OutputPathError(describe_os_error(exc, target)) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success move its contents into `target`.

    If `target` does not exist the staging folder is renamed onto it (atomic). If it exists, each staged
    entry replaces the entry of the same name (a staged sub-folder swaps in whole), and files of other
    names are kept: `--out .` never loses unrelated files. On failure the staging folder is removed and
    `target` is untouched."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"output folder '{target}' is an existing file; give a folder name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps_once(target.parent)
        stage = _owned_name(target, STAGE_TAG)
        stage.mkdir(mode=0o777)
    except OSError as exc:
        raise OutputPathError(describe_os_error(exc, target)) from exc
    try:
        yield stage
        try:
            _commit_stage(stage, target)
        except OSError as exc:
            raise OutputPathError(describe_os_error(exc, target)) from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _commit_stage(stage: Path, target: Path) -> None:
    if not target.exists():
        os.replace(stage, target)
        return
    for entry in sorted(stage.iterdir()):
        dest = target / entry.name
        if entry.is_dir() and dest.is_dir():
            old = _owned_name(dest, OLD_TAG)
            os.replace(dest, old)
            os.replace(entry, dest)
            shutil.rmtree(old, ignore_errors=True)
        elif dest.is_dir():
            shutil.rmtree(dest)
            os.replace(entry, dest)
        else:
            os.replace(entry, dest)


@contextlib.contextmanager
def removed_on_failure(
    folder: str | os.PathLike[str], keep: Callable[[Path], bool] = lambda _p: False
) -> Iterator[None]:
    """For run folders too large to stage (training runs): if the block fails and `folder` did not exist
    before it, remove `folder` - unless `keep(folder)` says it now holds something worth keeping (a resumable
    checkpoint)."""
    folder = Path(folder)
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed and folder.is_dir() and not keep(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
