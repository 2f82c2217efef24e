"""The reviewers' web inbox (DESIGN.md §8), served by the server at `/`.

- `routes`: sign-in, my queue (live over server-sent events), a request page, bulk decisions,
  history, control map and control tower; `email_pages`: where email decision links land.
- `sessions`: server-side web sessions and CSRF tokens; `events`: in-process wake-ups.
- `queries`: what the pages read; `render`: templates and security headers.

`Inbox` is what `create_app` builds: `router()` for the routes (the Slack interactivity
endpoint included when Slack is configured), `request_created(request)` after each create and
`on_closed(request)` after each closing commit (they refresh open queues), `start()` in the
lifespan. See docs/inbox.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from signoff.models import Request, Risk, Status
from signoff_server.db import Database
from signoff_server.inbox.email_pages import email_router
from signoff_server.inbox.events import InboxEvents
from signoff_server.inbox.routes import InboxRoutes
from signoff_server.inbox.sessions import web_sessions
from signoff_server.lifecycle import Lifecycle
from signoff_server.metrics import Metrics
from signoff_server.notifications.mail import RedactLinkTokens, email_links
from signoff_server.notifications.outbox import notification_outbox
from signoff_server.notifications.service import Notifications
from signoff_server.notifications.slack_routes import slack_router
from signoff_server.policy.engine import PolicyEngine
from signoff_server.schema import decisions, requests
from signoff_server.settings import Settings

__all__ = ["Inbox", "email_links", "notification_outbox", "web_sessions"]


def _bucket(le: str) -> str:
    """A histogram bucket bound for people: `≤ 30 s`, `≤ 5 min`, `≤ 2 h`, `longer`."""
    seconds = float(le)
    if seconds == float("inf"):
        return "longer"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"≤ {int(seconds // size)} {unit}"
    return f"≤ {seconds:g} s"


class Inbox:
    """The web inbox, email link pages and Slack interactivity of one app."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        lifecycle: Lifecycle,
        notifications: Notifications,
        *,
        metrics: Metrics | None = None,
        policy: PolicyEngine | None = None,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.db = db
        self.lifecycle = lifecycle
        self.notifications = notifications
        self.metrics = metrics
        self.policy = policy
        self.clock = clock
        self.events = InboxEvents()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the event loop that live queues wait on, and keep email-link tokens out of
        the access log (lifespan start)."""
        self.events.bind(loop)
        RedactLinkTokens.install("uvicorn.access")

    def request_created(self, request: Request) -> None:
        """After a create committed: open queues refresh, messages go out now."""
        self.events.publish("created", request.id)
        self.notifications.kick()

    def on_closed(self, request: Request) -> None:
        """After a close committed: open queues refresh, Slack messages show the outcome."""
        self.events.publish("closed", request.id)
        self.notifications.kick()

    def router(self) -> APIRouter:
        """Every route of the inbox (none in the OpenAPI schema)."""
        secure = (self.settings.public_url or "").startswith("https://")
        router = APIRouter(include_in_schema=False)
        pages = InboxRoutes(
            db=self.db,
            lifecycle=self.lifecycle,
            events=self.events,
            clock=self.clock,
            secure_cookies=secure,
            policy=self.policy,
            tower=self.tower_data,
            channels=lambda: [c.value for c in self.notifications.channels],
        )
        router.include_router(pages.router())
        router.include_router(
            email_router(
                links=lambda: self.notifications.links,
                lifecycle=self.lifecycle,
                db=self.db,
                clock=self.clock,
            )
        )
        slack = self.settings.slack
        if slack is not None and self.notifications.slack is not None:
            router.include_router(
                slack_router(
                    signing_secret=slack.signing_secret,
                    api=self.notifications.slack,
                    directory=self.notifications.directory,
                    lifecycle=self.lifecycle,
                    db=self.db,
                    request_url=self.notifications.request_url,
                    clock=self.clock,
                    kick=self.notifications.kick,
                )
            )
        return router

    def tower_data(self) -> dict[str, Any]:
        """The control tower's numbers: the database's (as `/metrics` reports them) and this
        process's decision latency histogram."""
        now = self.clock()
        with self.db.read() as conn:
            by_status = dict(
                conn.execute(
                    select(requests.c.status, func.count()).group_by(requests.c.status)
                ).all()
            )
            pending_risk = dict(
                conn.execute(
                    select(requests.c.risk, func.count())
                    .where(requests.c.status == Status.PENDING.value)
                    .group_by(requests.c.risk)
                ).all()
            )
            overdue = conn.execute(
                select(func.count()).where(
                    requests.c.status == Status.PENDING.value, requests.c.due_at < now
                )
            ).scalar_one()
            by_via = dict(
                conn.execute(select(decisions.c.via, func.count()).group_by(decisions.c.via)).all()
            )
            by_channel = [
                (f"{row.channel} {row.state}", row.n)
                for row in conn.execute(
                    select(
                        notification_outbox.c.channel,
                        notification_outbox.c.state,
                        func.count().label("n"),
                    ).group_by(notification_outbox.c.channel, notification_outbox.c.state)
                )
            ]
        latency: list[tuple[str, int]] = []
        if self.metrics is not None:
            previous = 0.0
            for metric in self.metrics.decision_latency.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_bucket"):
                        count = sample.value - previous
                        previous = sample.value
                        latency.append((_bucket(sample.labels["le"]), int(count)))
        return {
            "status": [(s.value, int(by_status.get(s.value, 0))) for s in Status],
            "pending_risk": [(r.value, int(pending_risk.get(r.value, 0))) for r in Risk],
            "overdue": int(overdue),
            "via": sorted((str(k), int(v)) for k, v in by_via.items()),
            "notifications": sorted(by_channel),
            "latency": latency,
        }
