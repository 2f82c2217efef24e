"""The demo configuration: the invoice-payment scenario's people and roles, and an agent key.

The demo's policies, schedules and escalation live in `examples/demo/signoff.yaml`, which
`signoff serve --demo` loads (`demo_config_path`). The people below match that file; at start
the server syncs the file's roles into the database anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from signoff_server.db import Database
from signoff_server.identity import create_agent_key, create_token, set_user

__all__ = ["DEMO_AGENT", "DEMO_PEOPLE", "DemoCredentials", "demo_config_path", "seed_demo"]

DEMO_AGENT = "finance-agent"
DEMO_PEOPLE: dict[str, tuple[str, list[str]]] = {
    "alice@example.com": ("Alice Approver", ["finance-approver"]),
    "bob@example.com": ("Bob Approver", ["finance-approver"]),
    "carol@example.com": ("Carol Manager", ["finance-manager", "finance-approver"]),
    "admin@example.com": ("Ada Admin", ["admin"]),
}
_REPO_CONFIG = Path(__file__).resolve().parents[4] / "examples" / "demo" / "signoff.yaml"
_PACKAGED_CONFIG = Path(__file__).resolve().parent / "demo_signoff.yaml"
DEMO_PASSWORD = "signoff-demo"  # noqa: S105 - printed on start; the demo is for a laptop


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """Fresh secrets minted for this demo run."""

    agent_key: str
    reviewer: str
    reviewer_token: str
    admin_token: str
    second_reviewer: str = "bob@example.com"
    """Payments over 10,000 need two approvers (examples/demo/signoff.yaml)."""
    second_reviewer_token: str = ""


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
            second_reviewer="bob@example.com",
            second_reviewer_token=create_token(conn, "bob@example.com"),
        )


def demo_config_path() -> Path:
    """`examples/demo/signoff.yaml` in a checkout; its copy shipped in the package otherwise."""
    return _REPO_CONFIG if _REPO_CONFIG.is_file() else _PACKAGED_CONFIG
