"""Waking long-polls when a request closes: in-process, and across replicas via LISTEN/NOTIFY.

A waiter registers an asyncio event for a request id, re-reads the request, and sleeps on the
event. Closing a request in this process sets the events directly; on PostgreSQL a listener
thread receives the NOTIFY that every closing transaction sends and sets them too, so a decision
taken on another replica wakes this one. A slow periodic re-check guards against a missed
notification (e.g. a listener reconnecting), never as the primary mechanism.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Generator
from contextlib import contextmanager

import psycopg

from signoff_server.lifecycle import NOTIFY_CHANNEL

__all__ = ["PostgresListener", "Waiters"]

log = logging.getLogger("signoff.notify")


class Waiters:
    """Per-request asyncio events, settable from any thread."""

    def __init__(self) -> None:
        self._events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the event loop the waiters live on (done at app start-up)."""
        self._loop = loop

    @contextmanager
    def waiting(self, request_id: str) -> Generator[asyncio.Event]:
        """Register interest in `request_id` for the duration of the block."""
        event = asyncio.Event()
        with self._lock:
            self._events[request_id].add(event)
        try:
            yield event
        finally:
            with self._lock:
                self._events[request_id].discard(event)
                if not self._events[request_id]:
                    del self._events[request_id]

    def wake(self, request_id: str) -> None:
        """Wake every waiter of `request_id`; safe to call from any thread."""
        with self._lock:
            events = list(self._events.get(request_id, ()))
        if not events or self._loop is None:
            return
        for event in events:
            self._loop.call_soon_threadsafe(event.set)


class PostgresListener:
    """A thread that LISTENs for closed requests and wakes local waiters."""

    def __init__(self, conninfo: str, waiters: Waiters) -> None:
        self._conninfo = conninfo
        self._waiters = waiters
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signoff-listen", daemon=True)

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; returns within about a second."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            self._waiters.wake(notice.payload)
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._stop.wait(1.0)
