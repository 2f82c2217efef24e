"""Waking long-polls when a request closes: in-process, and across replicas via LISTEN/NOTIFY.

A waiter registers an asyncio event for a request id, re-reads the request, and sleeps on the
event. Closing a request in this process sets the events directly; on PostgreSQL a listener
thread receives the NOTIFY that every closing transaction sends and sets them too, so a decision
taken on another replica wakes this one.

A notification sent while the listener is not connected (its connection was terminated, the
database restarted) is lost, so after every (re)connect, once LISTEN is in place, every local
waiter is woken to re-read its request: a request closed during the gap answers right then, not
at the next periodic re-check. That slow re-check (`wait_recheck`) remains the last guard (e.g.
while the database cannot be reached at all), never the primary mechanism. TCP keepalives on the
listening connection make a silently dead network path show up as an error (and a reconnect)
instead of a listener that hears nothing forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import psycopg

from signoff_server.lifecycle import NOTIFY_CHANNEL

__all__ = ["APPLICATION_NAME", "PostgresListener", "Waiters"]

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
        self._set(events)

    def wake_all(self) -> int:
        """Wake every waiter of every request (after notifications may have been missed);
        returns how many. Safe to call from any thread."""
        with self._lock:
            events = [event for group in self._events.values() for event in group]
        self._set(events)
        return len(events)

    def _set(self, events: list[asyncio.Event]) -> None:
        loop = self._loop
        if not events or loop is None:
            return
        for event in events:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nobody to wake
                loop.call_soon_threadsafe(event.set)


APPLICATION_NAME = "signoff-listen"
"""The listening connection's `application_name` (how it shows in `pg_stat_activity`)."""

_CONNECT: dict[str, Any] = {
    "autocommit": True,
    "application_name": APPLICATION_NAME,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
_MAX_BACKOFF = 2.0


class PostgresListener:
    """A thread that LISTENs for closed requests and wakes local waiters; reconnects (at once,
    then backing off up to 2 s) whenever its connection is lost."""

    def __init__(self, conninfo: str, waiters: Waiters) -> None:
        self._conninfo = conninfo
        self._waiters = waiters
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signoff-listen", daemon=True)
        self.connects = 0
        """How many times LISTEN was (re)established."""

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; returns within about a second."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, **_CONNECT) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.connects += 1
                    backoff = 0.0
                    if self.connects > 1:
                        # Requests closed while nobody listened sent notifications nobody got.
                        woken = self._waiters.wake_all()
                        log.info("LISTEN re-established; woke %d waiting long-polls", woken)
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            self._waiters.wake(notice.payload)
            except psycopg.Error as exc:
                log.warning(
                    "LISTEN connection lost (%s); reconnecting in %.1f s",
                    str(exc).strip(),
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF)
