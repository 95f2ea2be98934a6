"""Opening a model file for benchmarking, through `edgeseg.deploy.runtime.backends.open_segmenter`.

The bench only talks to the Segmenter interface (preprocess / infer / postprocess / synchronize), so
every backend of the runtime table (`edgeseg.deploy.runtime.backends.BACKENDS`) is benchmarked the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeseg.deploy.runtime.backends import model_suffixes
from edgeseg.errors import EdgesegError, InputPathError, RuntimeBackendError


def check_model_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputPathError(f"model file not found: {p} (give a model file: {', '.join(model_suffixes())})")
    if not p.is_file():
        raise InputPathError(f"model path is not a file: {p}")
    return p


def open_model(
    path: str | os.PathLike[str],
    backend: str = "auto",
    size: tuple[int, int] | None = None,
    threads: int | None = None,
) -> Any:
    """A Segmenter for `path`; any failure to load becomes one RuntimeBackendError line."""
    from edgeseg.deploy.runtime.backends import open_segmenter

    p = check_model_path(path)
    options = {"threads": threads} if threads else {}
    try:
        return open_segmenter(p, backend=backend, size=size, **options)
    except EdgesegError:
        raise
    except Exception as exc:  # a corrupt file can surface as whatever the backend's parser throws
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise RuntimeBackendError(f"cannot load {p} with backend '{backend}': {first[:300]}") from exc
