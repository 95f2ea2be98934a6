"""SIGTERM as an exception: `docker stop`, `timeout` and job schedulers send SIGTERM, whose default action
kills the process without running `finally` blocks, so temp files and staging folders would stay behind.
While a command runs, SIGTERM raises `Terminated` instead; the writers' cleanup runs and the CLI exits 143.
SIGKILL cannot be caught; io_utils.clean_stale_temps removes what such a run left, on the next write.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt: not an Exception, so no `except Exception` eats it
    """The process received SIGTERM."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM raises `Terminated`; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:  # respect a parent that asked us to ignore it
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
