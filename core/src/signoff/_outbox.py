"""Outcome reports sent from a background thread: `Client.report_outcome_in_background`.

Once a gated action ran (or was skipped), the agent has nothing left to learn from signoff: the
report only completes the request's timeline, so an agent should not wait a round trip for it.
Each `Client` gets one outbox on first use: a FIFO and one daemon thread that sends the reports
in order, with the client's retries. A report that still fails is logged (the action happened
either way; a 409 means it was reported already). `Client.flush()` waits for the queue to
drain, `Client.close()` flushes first, and so does the interpreter at exit, each for at most
`FLUSH_SECONDS`.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
from collections.abc import Callable

__all__ = ["FLUSH_SECONDS", "Outbox"]

log = logging.getLogger("signoff.client")

FLUSH_SECONDS = 10.0
"""How long `close()` and interpreter exit wait for reports still queued."""

Send = Callable[[], None]

_live: weakref.WeakSet[Outbox] = weakref.WeakSet()


class Outbox:
    """A FIFO of sends and the one daemon thread that runs them."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Send] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        _live.add(self)

    def submit(self, send: Send) -> None:
        """Queue `send`; it runs on the outbox's thread after everything queued before it."""
        self._queue.put(send)
        with self._lock:
            # Started on first use, and again after a fork (threads do not survive one).
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="signoff-outbox", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            send = self._queue.get()
            try:
                send()
            except Exception:  # the sender logs what it can act on; never kill the thread
                log.warning("a background report to signoff failed", exc_info=True)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything queued ran; False if `timeout` seconds passed first."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)


@atexit.register
def _flush_at_exit() -> None:  # pyright: ignore[reportUnusedFunction]
    for outbox in list(_live):
        if not outbox.flush(FLUSH_SECONDS):
            log.warning("exiting with outcome reports not yet sent to signoff")
