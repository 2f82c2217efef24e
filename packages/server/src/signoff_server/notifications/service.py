"""`Notifications`: the one notifier of the server, and the worker that delivers its messages.

Other code tells it what happened, inside the transaction of the change:

* `notify(conn, notification)` — the policy engine's `Notifier` protocol (a new request's
  on-shift people, an escalation, a chain step); `policy_notifier()` combines it with the
  engine's `AuditNotifier`, which records `request.notified`;
* `request_created(conn, request, now)` — a new request without a policy file: its assignees;
* `close_hook(conn, request, now)` — a lifecycle close hook: the Slack messages of the request
  get the outcome in place of their buttons.

Each of these writes one outbox row per person and channel (email when SMTP is configured,
Slack when Slack is configured and the person has a Slack id) and arms a
`notification.deliver` timer. The scheduler hands due timers to `handle`, which runs the attempt
on a small thread pool (network I/O never blocks SLA deadlines). Every message ends as one
timeline event: `notification.sent` or, after its last retry or a permanent refusal,
`notification.failed`. A message for a request that closed before it went out is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Connection, Row, select, update

from signoff.models import Request, RequestCreate
from signoff_server import audit, timers
from signoff_server.db import Database
from signoff_server.errors import Conflict
from signoff_server.notifications.mail import EmailLinks, SmtpError, SmtpSender, compose
from signoff_server.notifications.outbox import (
    DELIVER_TIMER,
    Channel,
    NotificationState,
    Reason,
    enqueue,
    notification_outbox,
)
from signoff_server.notifications.secret import default_secret_path, load_secret
from signoff_server.notifications.slack import (
    SlackApi,
    SlackApiError,
    SlackDirectory,
    outcome_blocks,
    request_blocks,
)
from signoff_server.policy.engine import PolicyEngine
from signoff_server.policy.notifier import AuditNotifier, Notification, Notifier, Notifiers
from signoff_server.routing import RequestRouter, Router, Routing
from signoff_server.schema import requests
from signoff_server.settings import Settings
from signoff_server.timers import Scheduler, Timer, TimerHandler
from signoff_server.views import load_request

__all__ = ["DeliveryError", "Notifications", "NotifyingRouter"]

log = logging.getLogger("signoff.notifications")

_BUSY_DELAY = timedelta(seconds=1)


class DeliveryError(Exception):
    """One attempt failed; `permanent` when retrying cannot help."""

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.detail = detail[:300]
        self.permanent = permanent


class NotifyingRouter:
    """A `Router` that routes like `inner` and then queues messages to the assignees."""

    def __init__(self, inner: Router, notifications: Notifications) -> None:
        self.inner = inner
        self.notifications = notifications

    def route(
        self, conn: Connection, payload: RequestCreate, agent_id: str, now: datetime
    ) -> Routing:
        """`inner`'s routing."""
        return self.inner.route(conn, payload, agent_id, now)

    def after_create(
        self, conn: Connection, request: Request, routing: Routing, now: datetime
    ) -> None:
        """`inner`'s follow-ups, then the messages."""
        self.inner.after_create(conn, request, routing, now)
        self.notifications.request_created(conn, request, now)


@dataclass(frozen=True, slots=True)
class _Attempt:
    ref: dict[str, Any] | None = None
    error: DeliveryError | None = None


class Notifications:
    """Email and Slack notifications with retries; see the module docstring.

    `start()` loads the link-signing secret and opens the worker pool and the Slack client;
    `stop()` closes them. `attach(scheduler)` lets commits wake the scheduler.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        registry: CollectorRegistry | None = None,
        workers: int = 4,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.public_url = (settings.public_url or "http://127.0.0.1:8080").rstrip("/")
        self.retry_delays = tuple(settings.notification_retry_delays)
        self.directory = SlackDirectory(settings.slack.users if settings.slack else {})
        self.slack: SlackApi | None = SlackApi(settings.slack) if settings.slack else None
        self.smtp = SmtpSender(settings.smtp) if settings.smtp else None
        self.links: EmailLinks | None = None
        self.secret_path = Path(
            settings.secret_key_file or default_secret_path(settings.database_url)
        )
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(workers * 2)
        self._wake: Callable[[], None] = lambda: None
        self.sent = Counter(
            "signoff_notifications",
            "Notifications settled, by channel and result (sent, failed, skipped)",
            ["channel", "result"],
            registry=registry or CollectorRegistry(),
        )

    # wiring ---------------------------------------------------------------------------------

    @property
    def timer_handlers(self) -> Mapping[str, TimerHandler]:
        """The timer kinds this worker handles, for the Scheduler."""
        return {DELIVER_TIMER: self.handle}

    def attach(self, scheduler: Scheduler) -> None:
        """Let `kick()` wake the scheduler."""
        self._wake = scheduler.wake

    def kick(self) -> None:
        """Look for due messages now (call after a commit that queued some)."""
        if self.smtp is not None or self.slack is not None:  # else nothing can be queued
            self._wake()

    def policy_notifier(self) -> Notifier:
        """For the policy engine: record `request.notified`, then queue the messages."""
        return Notifiers([AuditNotifier(), self])

    def learn_slack_ids(self, ids: Mapping[str, str]) -> None:
        """Add people's Slack ids (email → `U…`), e.g. from the policy file's `slack:`."""
        self.directory.add(ids)

    def use_policy(self, policy: PolicyEngine | None) -> None:
        """Take the Slack ids of the policy file's people (they win over the settings)."""
        if policy is not None:
            people = policy.config.people.items()
            self.learn_slack_ids({email: p.slack for email, p in people if p.slack})

    def router(self, inner: Router | None = None) -> Router:
        """For a server without a policy file: route as `inner` does (default: by the request
        itself), then notify the assignees of each new request."""
        return NotifyingRouter(inner or RequestRouter(), self)

    @property
    def channels(self) -> list[Channel]:
        """The channels that are configured."""
        return [c for c, on in ((Channel.EMAIL, self.smtp), (Channel.SLACK, self.slack)) if on]

    def start(self) -> None:
        """Load (first start: create) the link secret; open the Slack client and worker pool."""
        if self.smtp is not None:
            ttl = timedelta(hours=self.settings.smtp.link_hours if self.settings.smtp else 24)
            self.links = EmailLinks(load_secret(self.secret_path), ttl, self.clock)
        if self.slack is not None:
            self.slack.open()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="signoff-notify")

    def stop(self) -> None:
        """Finish attempts in flight; queued ones are claimed again when their lease ends."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.slack is not None:
            self.slack.close()

    # what happened --------------------------------------------------------------------------

    def notify(self, conn: Connection, notification: Notification) -> None:
        """`Notifier` protocol: queue messages to the people of `notification`."""
        reason = (
            Reason.ESCALATED
            if notification.reason == "escalated"
            else (Reason.CREATED if notification.reason == "created" else Reason.STEP)
        )
        self._queue(
            conn,
            notification.request_id,
            notification.assignment.people,
            reason,
            notification.level,
            notification.at,
        )

    def request_created(self, conn: Connection, request: Request, now: datetime) -> None:
        """A new request without a policy engine: queue messages to its assignees."""
        self._queue(
            conn, request.id, request.assignees, Reason.CREATED, request.escalation_level, now
        )

    def close_hook(self, conn: Connection, request: Request, now: datetime) -> None:
        """Lifecycle close hook: replace the buttons of the request's Slack messages."""
        if self.slack is None:
            return  # no Slack messages can be updated (and none were sent by this config)
        rows = conn.execute(
            select(notification_outbox).where(
                notification_outbox.c.request_id == request.id,
                notification_outbox.c.channel == Channel.SLACK.value,
                notification_outbox.c.state == NotificationState.SENT.value,
                notification_outbox.c.reason != Reason.OUTCOME.value,
            )
        )
        for row in rows:
            self._queue_outcome(conn, row, now)

    def _queue(
        self,
        conn: Connection,
        request_id: str,
        people: Iterable[str],
        reason: Reason,
        level: int,
        now: datetime,
    ) -> None:
        for person in dict.fromkeys(people):
            if self.smtp is not None:
                enqueue(
                    conn,
                    request_id=request_id,
                    channel=Channel.EMAIL,
                    recipient=person,
                    address=person,
                    reason=reason,
                    level=level,
                    now=now,
                )
            slack_id = self.directory.slack_id(person)
            if self.slack is not None and slack_id is not None:
                enqueue(
                    conn,
                    request_id=request_id,
                    channel=Channel.SLACK,
                    recipient=person,
                    address=slack_id,
                    reason=reason,
                    level=level,
                    now=now,
                )

    @staticmethod
    def _queue_outcome(conn: Connection, row: Row[Any], now: datetime) -> None:
        enqueue(
            conn,
            request_id=row.request_id,
            channel=Channel.SLACK,
            recipient=row.recipient,
            address=row.address,
            reason=Reason.OUTCOME,
            level=row.level,
            now=now,
            ref=row.ref,
        )

    # delivery -------------------------------------------------------------------------------

    def handle(self, timer: Timer, now: datetime) -> None:
        """Timer handler: run the attempt on a worker, or hand the timer back if all are busy."""
        pool = self._pool
        if pool is None or not self._slots.acquire(blocking=False):
            self._release(timer, now + _BUSY_DELAY)
            return
        try:
            future = pool.submit(self._attempt, timer)
        except RuntimeError:  # shutting down
            self._slots.release()
            self._release(timer, now)
            return
        future.add_done_callback(lambda _: self._slots.release())

    def _release(self, timer: Timer, due_at: datetime) -> None:
        try:
            with self.db.write() as conn:
                timers.release(conn, timer, due_at=due_at)
        except Exception:
            log.exception("could not hand back notification timer %s", timer.id)

    def _attempt(self, timer: Timer) -> None:
        try:
            self._run(timer)
        except Conflict:
            pass  # re-claimed elsewhere: that claim records its own attempt
        except Exception:
            log.exception("notification attempt for %s failed unexpectedly", timer.request_id)

    def _run(self, timer: Timer) -> None:
        notification_id = str(timer.payload.get("id", ""))
        with self.db.read() as conn:
            row = conn.execute(
                select(notification_outbox).where(notification_outbox.c.id == notification_id)
            ).first()
            request = load_request(conn, None, row.request_id)[1] if row is not None else None
        if (
            row is None
            or request is None
            or row.state != NotificationState.PENDING.value
            or row.attempts != timer.fence
        ):
            with self.db.write() as conn:
                timers.complete(conn, timer)
            return
        if row.reason != Reason.OUTCOME.value and request.status.is_terminal:
            with self.db.write() as conn:
                timers.complete(conn, timer)
                self._set(conn, row, state=NotificationState.SKIPPED)
            self.sent.labels(channel=row.channel, result="skipped").inc()
            return
        attempt = self._send(row, request)
        self._record(timer, row, attempt)

    def _send(self, row: Row[Any], request: Request) -> _Attempt:
        try:
            if row.channel == Channel.EMAIL.value:
                self._send_email(row, request)
                return _Attempt()
            if row.channel == Channel.SLACK.value:
                return _Attempt(ref=self._send_slack(row, request))
            raise DeliveryError(f"unknown channel {row.channel!r}", permanent=True)
        except DeliveryError as exc:
            return _Attempt(error=exc)

    def _send_email(self, row: Row[Any], request: Request) -> None:
        if self.smtp is None or self.links is None or self.settings.smtp is None:
            raise DeliveryError("email is not configured on this server", permanent=True)
        with self.db.write() as conn:
            tokens = self.links.mint(conn, request.id, row.recipient)
        message = compose(
            request,
            sender=self.settings.smtp.sender,
            to=row.address,
            reason=row.reason,
            request_url=self.request_url(request.id),
            links={v: f"{self.public_url}/email/decide?t={t}" for v, t in tokens.items()},
            link_hours=self.settings.smtp.link_hours,
            now=self.clock(),
        )
        try:
            self.smtp.send(message)
        except SmtpError as exc:
            raise DeliveryError(exc.detail, permanent=exc.permanent) from None

    def _send_slack(self, row: Row[Any], request: Request) -> dict[str, Any] | None:
        if self.slack is None:
            raise DeliveryError("Slack is not configured on this server", permanent=True)
        url = self.request_url(request.id)
        try:
            if row.reason == Reason.OUTCOME.value:
                ref: dict[str, Any] = dict(row.ref or {})
                blocks, text = outcome_blocks(request, url)
                self.slack.update(str(ref.get("channel")), str(ref.get("ts")), blocks, text)
                return ref
            blocks, text = request_blocks(request, url, escalated=row.reason == "escalated")
            return self.slack.post(row.address, blocks, text)
        except SlackApiError as exc:
            raise DeliveryError(exc.detail, permanent=exc.permanent) from None

    def _record(self, timer: Timer, row: Row[Any], attempt: _Attempt) -> None:
        now = self.clock()
        attempts = row.attempts + 1
        data: dict[str, Any] = {
            "notification_id": row.id,
            "channel": row.channel,
            "recipient": row.recipient,
            "reason": row.reason,
            "level": row.level,
            "attempts": attempts,
        }
        result = "sent"
        with self.db.write() as conn:
            timers.complete(conn, timer)
            # Lock the request before the audit append, and so serialize with a closing
            # transaction: a Slack message that went out as the request closed still gets its
            # outcome (the close hook did not see it, so we queue it here).
            status = conn.execute(
                select(requests.c.status).where(requests.c.id == row.request_id).with_for_update()
            ).scalar_one()
            if attempt.error is None:
                self._set(
                    conn,
                    row,
                    state=NotificationState.SENT,
                    attempts=attempts,
                    ref=attempt.ref,
                    sent_at=now,
                )
                audit.append(
                    conn,
                    type="notification.sent",
                    actor="system",
                    at=now,
                    request_id=row.request_id,
                    data=data,
                )
                if (
                    row.channel == Channel.SLACK.value
                    and row.reason != Reason.OUTCOME.value
                    and status != "pending"
                ):
                    fresh = conn.execute(
                        select(notification_outbox).where(notification_outbox.c.id == row.id)
                    ).one()
                    self._queue_outcome(conn, fresh, now)
            else:
                error = attempt.error
                delay = None if error.permanent else self._delay(attempts)
                if delay is None:
                    result = "failed"
                    self._set(
                        conn,
                        row,
                        state=NotificationState.FAILED,
                        attempts=attempts,
                        last_error=error.detail,
                    )
                    audit.append(
                        conn,
                        type="notification.failed",
                        actor="system",
                        at=now,
                        request_id=row.request_id,
                        data={**data, "error": error.detail},
                    )
                else:
                    result = "retry"
                    self._set(conn, row, attempts=attempts, last_error=error.detail)
                    timers.arm(
                        conn,
                        kind=DELIVER_TIMER,
                        due_at=now + delay,
                        now=now,
                        request_id=row.request_id,
                        fence=attempts,
                        payload={"id": row.id},
                    )
        if result != "retry":
            self.sent.labels(channel=row.channel, result=result).inc()
        if result == "failed":
            log.error(
                "notification %s (%s to %s) failed after %d attempts: %s",
                row.id,
                row.channel,
                row.recipient,
                attempts,
                attempt.error.detail if attempt.error else "",
                extra={"alert": "notification.failed"},
            )
        elif attempt.error is not None:
            log.warning(
                "notification %s (%s) failed, retrying: %s",
                row.id,
                row.channel,
                attempt.error.detail,
            )
        if result == "sent" and row.channel == Channel.SLACK.value:
            self.kick()

    def _delay(self, attempts: int) -> timedelta | None:
        if attempts > len(self.retry_delays):
            return None
        return timedelta(seconds=self.retry_delays[attempts - 1])

    @staticmethod
    def _set(conn: Connection, row: Row[Any], **values: Any) -> None:
        conn.execute(
            update(notification_outbox)
            .where(notification_outbox.c.id == row.id)
            .values(
                **{
                    k: (v.value if isinstance(v, NotificationState) else v)
                    for k, v in values.items()
                }
            )
        )

    def request_url(self, request_id: str) -> str:
        """The inbox page of a request."""
        return f"{self.public_url}/requests/{request_id}"
