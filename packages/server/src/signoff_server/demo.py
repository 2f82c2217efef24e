"""The demo configuration: the invoice-payment scenario's people and roles, and an agent key."""

from __future__ import annotations

from dataclasses import dataclass

from signoff_server.db import Database
from signoff_server.identity import create_agent_key, create_token, set_user

__all__ = ["DEMO_AGENT", "DEMO_PEOPLE", "DemoCredentials", "seed_demo"]

DEMO_AGENT = "finance-agent"
DEMO_PEOPLE: dict[str, tuple[str, list[str]]] = {
    "alice@example.com": ("Alice Approver", ["finance-approver"]),
    "bob@example.com": ("Bob Approver", ["finance-approver"]),
    "carol@example.com": ("Carol Manager", ["finance-manager", "finance-approver"]),
    "admin@example.com": ("Ada Admin", ["admin"]),
}
DEMO_PASSWORD = "signoff-demo"  # noqa: S105 - printed on start; the demo is for a laptop


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """Fresh secrets minted for this demo run."""

    agent_key: str
    reviewer: str
    reviewer_token: str
    admin_token: str


def seed_demo(db: Database) -> DemoCredentials:
    """Create the demo people (idempotently) and mint an agent key and reviewer tokens."""
    with db.write() as conn:
        for email, (name, roles) in DEMO_PEOPLE.items():
            set_user(conn, email, roles, name=name, password=DEMO_PASSWORD)
        return DemoCredentials(
            agent_key=create_agent_key(conn, DEMO_AGENT),
            reviewer="alice@example.com",
            reviewer_token=create_token(conn, "alice@example.com"),
            admin_token=create_token(conn, "admin@example.com"),
        )
