"""In-process inbox events: a request was created or closed, so open queues refresh.

Publishing is safe from any thread (the lifecycle runs in worker threads); each subscriber (one
per open `/events` stream) gets its own bounded asyncio queue on the app's loop. Streams send
only the kind (`created`, `closed`, `updated`), never which request: every reviewer's stream gets
every event, and the browser re-reads its own queue, which applies visibility.
Across replicas there are no events; the page also refreshes on a slow timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Generator
from contextlib import contextmanager

__all__ = ["InboxEvents"]


class InboxEvents:
    """Fan-out of `(kind, request_id)` to every open stream."""

    def __init__(self, *, backlog: int = 100) -> None:
        self._queues: set[asyncio.Queue[tuple[str, str]]] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog = backlog

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the event loop the streams live on (done at app start-up)."""
        self._loop = loop

    @contextmanager
    def subscribe(self) -> Generator[asyncio.Queue[tuple[str, str]]]:
        """A queue of events for the duration of the block."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(self._backlog)
        with self._lock:
            self._queues.add(queue)
        try:
            yield queue
        finally:
            with self._lock:
                self._queues.discard(queue)

    def publish(self, kind: str, request_id: str) -> None:
        """Tell every stream; safe to call from any thread."""
        loop = self._loop
        with self._lock:
            queues = list(self._queues)
        if loop is None or not queues:
            return
        for queue in queues:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._put, queue, (kind, request_id))

    @staticmethod
    def _put(queue: asyncio.Queue[tuple[str, str]], item: tuple[str, str]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a stuck stream just misses events
            queue.put_nowait(item)

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        with self._lock:
            return len(self._queues)
