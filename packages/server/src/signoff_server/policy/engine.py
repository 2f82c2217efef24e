"""The policy engine as the server uses it: config, router, escalation handler, people sync.

`PolicyEngine.load(path, db)` validates the file (refusing unsatisfiable quorums) and builds the
parts `create_app` wires in: `router` for the lifecycle, `timer_handlers` for the scheduler,
`sync_people()` for start-up, `control_map()` for `GET /v1/control-map`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select, update

from signoff_server import audit
from signoff_server.db import Database
from signoff_server.identity import set_user
from signoff_server.policy.config import PolicyConfig, load_config
from signoff_server.policy.controlmap import ControlMap, build_control_map
from signoff_server.policy.escalation import ESCALATION_TIMER, Escalations
from signoff_server.policy.notifier import AuditNotifier, Notifier
from signoff_server.policy.roster import Roster
from signoff_server.policy.router import PolicyRouter
from signoff_server.policy.tables import config_people
from signoff_server.schema import user_roles
from signoff_server.timers import TimerHandler

__all__ = ["PolicyEngine", "sync_people"]


class PolicyEngine:
    """Everything the server needs from one loaded `signoff.yaml`."""

    def __init__(
        self, config: PolicyConfig, db: Database, *, notifier: Notifier | None = None
    ) -> None:
        self.config = config
        self.db = db
        self.notifier: Notifier = notifier or AuditNotifier()
        self.escalations = Escalations(db, Roster(config), self.notifier)
        self.router = PolicyRouter(config, self.notifier, self.escalations)

    @classmethod
    def load(
        cls, path: str | Path, db: Database, *, notifier: Notifier | None = None
    ) -> PolicyEngine:
        """Load and validate `path`; ConfigError names every problem with file and line."""
        return cls(load_config(path), db, notifier=notifier)

    @property
    def timer_handlers(self) -> Mapping[str, TimerHandler]:
        """The timer kinds this engine handles, for the Scheduler."""
        return {ESCALATION_TIMER: self.escalations.fire}

    def sync_people(self, now: datetime) -> None:
        """Write the file's people and roles into users/user_roles (see `sync_people`)."""
        with self.db.write() as conn:
            sync_people(conn, self.config, now)

    def control_map(self, now: datetime, days: int = 14) -> ControlMap:
        """The control map from `now` over `days` days."""
        return build_control_map(self.config, now, days=days)


def sync_people(conn: Connection, config: PolicyConfig, now: datetime) -> None:
    """Make `users`/`user_roles` hold the file's people with exactly the file's roles.

    People the file no longer lists but an earlier file did lose every role (their user row and
    tokens stay, for the audit trail); people added with `signoff users add` and never listed
    in a file are left alone. Recorded as one `config.loaded` audit event.
    """
    previous = {r.email for r in conn.execute(select(config_people.c.email))}
    for email, person in config.people.items():
        set_user(conn, email, config.roles_of(email), name=person.name)
        values = {"version": config.version, "synced_at": now}
        if email in previous:
            conn.execute(update(config_people).where(config_people.c.email == email).values(values))
        else:
            conn.execute(insert(config_people).values(email=email, **values))
    removed = sorted(previous - set(config.people))
    for email in removed:
        conn.execute(delete(user_roles).where(user_roles.c.email == email))
        conn.execute(delete(config_people).where(config_people.c.email == email))
    audit.append(
        conn,
        type="config.loaded",
        actor="system",
        at=now,
        data={
            "path": config.path,
            "version": config.version,
            "people": sorted(config.people),
            "roles": sorted(config.roles),
            "policies": [p.name for p in config.policies],
            "removed": removed,
        },
    )
