"""Bounded hand-offs between the stream's threads; none of them can build a backlog.

* :class:`LatestSlot` holds one item. In real-time mode a new item replaces one the consumer has not taken
  yet (the stale one is dropped and counted), so the consumer always works on the newest frame. In lossless
  mode (a recorded file played as fast as possible) the producer waits instead.
* :class:`DropOldestQueue` feeds one sink: when the sink falls behind, its oldest item is dropped and
  counted, so a slow sink never stalls the stage that feeds it.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """Raised by ``put`` after ``close``: the consumer has gone."""


class LatestSlot(Generic[T]):
    """A one-item mailbox with the newest-item policy (or blocking, when ``lossless``)."""

    def __init__(self, lossless: bool = False) -> None:
        self.lossless = lossless
        self.dropped = 0
        self._item: T | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> None:
        """Offer ``item``; replaces (and counts) an untaken one, or waits for the consumer when lossless."""
        with self._cond:
            if self.lossless:
                while self._item is not None and not self._closed:
                    self._cond.wait()
            if self._closed:
                raise Closed
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, or ``None`` after ``timeout`` seconds or once closed and empty."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake everyone; ``get`` still returns a pending item once, ``put`` raises :class:`Closed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return int(self._item is not None)


class DropOldestQueue(Generic[T]):
    """A FIFO of at most ``maxsize`` items; ``put`` never blocks, it drops (and counts) the oldest instead."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> None:
        with self._cond:
            if self._closed:
                raise Closed
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or ``None`` after ``timeout`` seconds or once closed and drained."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """Stop accepting items; pending ones can still be drained with ``get``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)
