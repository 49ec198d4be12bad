"""Decoding and encoding beside the model: a thread on each side, joined by bounded queues.

PyAV releases the GIL while FFmpeg decodes and encodes, and torch while it computes, so a
reader thread and a writer thread overlap with the model's work. The queues hold a few batches
at most: memory stays bounded whatever the video's length. An error in either thread reaches
the caller, and stopping early stops both.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_DONE = object()
# Batches waiting on each side of the model: one being filled, one ready.
DEPTH = 2


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(items: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class Prefetch(Generic[T]):
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead.

    Use as a context manager; leaving it early stops the thread.
    """

    def __init__(self, source: Iterable[T], depth: int = DEPTH, name: str = "reader") -> None:
        self._items: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not _put(self._items, item, self._stop):
                    return
            _put(self._items, _DONE, self._stop)
        except BaseException as error:  # handed to the consumer, which re-raises it
            _put(self._items, _Failure(error), self._stop)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Drain(Generic[T]):
    """Hand items to ``consume`` in a background thread, at most ``depth`` waiting.

    ``put`` raises the thread's error, if it failed; ``finish`` waits for the last item.
    """

    def __init__(
        self, consume: Callable[[T], None], depth: int = DEPTH, name: str = "writer"
    ) -> None:
        self._items: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._consume = consume
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._items.get()
            if item is _DONE:
                return
            try:
                self._consume(item)
            except BaseException as error:
                self._error = error
                self._stop.set()
                return

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._raise()
        if not _put(self._items, item, self._stop):
            self._raise()

    def finish(self) -> None:
        """Wait until every item is consumed; raise the thread's error, if any."""
        _put(self._items, _DONE, self._stop)
        self._thread.join()
        self._raise()

    def abandon(self) -> None:
        """Stop without waiting for the queued items (after an error elsewhere)."""
        self._stop.set()
        while True:  # unblock the thread if it waits for an item
            try:
                self._items.get_nowait()
            except queue.Empty:
                break
        self._items.put(_DONE)
        self._thread.join()
