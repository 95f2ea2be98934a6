"""A small bounded queue between pipeline stages, with the two policies a video pipeline needs.

- `drop_oldest=True` (live sources): a put into a full queue evicts the oldest item and counts it as
  dropped, so the consumer always gets the newest frame and latency cannot build up behind a slow model.
- `drop_oldest=False` (files, folders): a put into a full queue waits, so every frame is processed, in
  order, at the pace of the slowest stage (back-pressure), with bounded memory.

`close(end)` marks the end of the stream: consumers drain what is queued, then receive `end`. It never
gets dropped, and it wakes a producer blocked in `put` so shutdown never hangs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any


class QueueClosed(Exception):
    """`put` on a queue that was closed (the consumer has gone away)."""


class Empty(Exception):
    """`get` timed out with nothing queued."""


class FrameQueue:
    def __init__(self, maxsize: int, drop_oldest: bool) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[Any] = deque()
        self._end: Any = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Any, timeout: float | None = None) -> None:
        """Queue `item`; in blocking mode wait for room (raises TimeoutError after `timeout`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise QueueClosed
            if len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                else:
                    while len(self._items) >= self.maxsize and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            raise TimeoutError
                        self._cond.wait(remaining)
                    if self._closed:
                        raise QueueClosed
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest queued item; after close and drain, the end marker (every time)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty
                self._cond.wait(remaining)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return self._end

    def close(self, end: Any) -> None:
        """End of stream: first close wins (a later, e.g. shutdown, close keeps the original reason)."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._end = end
            self._cond.notify_all()

    def clear(self) -> int:
        """Discard queued items (shutdown); returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
