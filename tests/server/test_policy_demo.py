"""`signoff serve --demo`: the demo people and tokens work with the demo policy file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy import select

from signoff import Client, Status
from signoff_server.db import Database
from signoff_server.demo import DEMO_PASSWORD, demo_config_path, seed_demo
from signoff_server.identity import create_token, verify_password
from signoff_server.schema import users
from signoff_server.settings import Settings

from .conftest import ServerThread

REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo" / "request.json"


def test_demo_flow_with_the_demo_policies(store_url: str) -> None:
    db = Database(store_url)
    try:
        creds = seed_demo(db)
        settings = Settings(
            database_url=store_url, timer_interval=0.1, config_path=str(demo_config_path())
        )
        with ServerThread(settings) as server:
            with db.write() as conn:
                carol_token = create_token(conn, "carol@example.com")
            with (
                Client(base_url=server.url, api_key=creds.agent_key) as agent,
                Client(base_url=server.url, api_key=creds.reviewer_token) as alice,
                Client(base_url=server.url, api_key=creds.second_reviewer_token) as bob,
                Client(base_url=server.url, api_key=carol_token) as carol,
                httpx.Client(base_url=server.url) as http,
            ):
                request = agent.create_request(json.loads(REQUEST.read_text()))
                assert request.policy is not None
                assert request.policy.name == "large-payment"
                assert request.assignees[0] in {"alice@example.com", "bob@example.com"}
                assert alice.decide(request.id, "approve").status is Status.PENDING
                assert bob.decide(request.id, "approve").status is Status.APPROVED
                assert carol.list_requests().items  # Carol holds finance-approver too
                answer = http.get(
                    "/v1/control-map", headers={"authorization": f"Bearer {creds.admin_token}"}
                )
                assert answer.status_code == 200
        with db.read() as conn:  # the start-up sync kept the demo passwords
            stored = conn.execute(
                select(users.c.password_hash).where(users.c.email == "alice@example.com")
            ).scalar_one()
        assert verify_password(stored, DEMO_PASSWORD)
    finally:
        db.dispose()
