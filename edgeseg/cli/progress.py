"""The progress bar the CLI commands share: rich, on stderr (stdout stays for tables and results), with the
elapsed time and an ETA once the total is known."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yields `update(done, total, description=None)`; a no-op when `enabled` is False or stderr is not a
    terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:  # a log file or pipe gets no bar (and no stray blank line)
        yield lambda *_a, **_k: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, description: str | None = None) -> None:
            bar.update(
                task, completed=done, total=total, **({"description": description} if description else {})
            )

        yield update
