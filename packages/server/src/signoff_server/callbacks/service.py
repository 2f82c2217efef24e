"""`Callbacks`: everything the app wires in for signed callbacks, built from `Settings`.

`create_app` hands `close_hook` to the Lifecycle (queue in the closing transaction),
`timer_handlers` to the Scheduler (deliver attempts) and then calls `attach(scheduler)` (lease
length and wake-up); it calls `on_closed(request)` after each closing commit (deliver now, not at
the next tick) and `check_request(payload)` before each create (422 for a disallowed
`callback.url`); it includes `router()` (`GET /v1/keys`) and runs `start()` / `stop()` in its
lifespan.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection

from signoff.models import Request, RequestCreate
from signoff_server.callbacks.delivery import CallbackDelivery, CallbackMetrics, RetrySchedule
from signoff_server.callbacks.keys import KeyRing, default_key_path
from signoff_server.callbacks.outbox import enqueue
from signoff_server.callbacks.routes import keys_router
from signoff_server.callbacks.targets import CallbackTargets, TargetRefused
from signoff_server.db import Database
from signoff_server.errors import Invalid
from signoff_server.settings import Settings
from signoff_server.timers import Scheduler, TimerHandler

__all__ = ["Callbacks", "key_path"]


def key_path(settings: Settings) -> Path:
    """The webhook key file for these settings (configured, or the default location)."""
    if settings.webhook_keys_path:
        return Path(settings.webhook_keys_path)
    return default_key_path(settings.database_url)


class Callbacks:
    """Signed decision callbacks for one app: outbox hook, delivery worker, keys, URL checks.

    `clock` and `rng` are the seams for tests (an injectable clock instead of sleeping).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        registry: CollectorRegistry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.keyring = KeyRing(key_path(settings), clock=clock)
        self.targets = CallbackTargets(settings.callback_allow)
        self.delivery = CallbackDelivery(
            db,
            self.keyring,
            self.targets,
            schedule=RetrySchedule(settings.callback_retry_delays),
            timeout=settings.callback_timeout,
            workers=settings.callback_workers,
            metrics=CallbackMetrics(registry, db),
            clock=clock,
            rng=rng,
        )

    @property
    def timer_handlers(self) -> Mapping[str, TimerHandler]:
        """Timer kinds this feature handles, for the `Scheduler` mapping."""
        return self.delivery.handlers

    def attach(self, scheduler: Scheduler) -> None:
        """Connect the delivery worker to the scheduler that runs its timers."""
        self.delivery.bind(scheduler)

    def close_hook(self, conn: Connection, request: Request, now: datetime) -> None:
        """Lifecycle close hook: queue the callback in the transaction that closes `request`."""
        enqueue(conn, request, now)

    def on_closed(self, request: Request) -> None:
        """After the closing commit: have the first attempt happen now, not at the next tick."""
        if request.callback is not None:
            self.delivery.kick()

    def check_request(self, payload: RequestCreate) -> None:
        """Refuse a request whose callback URL is not allowed (422 naming `callback.url`)."""
        if payload.callback is None:
            return
        try:
            self.targets.check(str(payload.callback.url))
        except TargetRefused as exc:
            raise Invalid(
                f"callback.url {exc}", field="callback.url", code="callback_url_not_allowed"
            ) from None

    def router(self, audit_key: Callable[[], str | None] | None = None) -> APIRouter:
        """The HTTP routes: `GET /v1/keys` (with the audit log's verifier key, if given)."""
        return keys_router(self.keyring, self.clock, audit_key)

    def start(self) -> None:
        """Load (on first start: create) the signing key file; start the delivery worker."""
        self.keyring.ensure()
        self.delivery.start()

    def stop(self) -> None:
        """Finish attempts in flight and stop the delivery worker."""
        self.delivery.stop()
