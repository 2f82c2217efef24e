"""Racing reviewers: of many concurrent conflicting decisions exactly the right number apply.

Each reviewer is a distinct person holding the role, with an HTTP client (and connection) of its
own that is opened before the race; a barrier releases every decision at once. Runs on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx

from .conftest import World

ROLE = "finance-approver"


def invoice(**overrides: Any) -> dict[str, Any]:
    return {
        "action": {"name": "payments.release", "arguments": {"invoice_id": "INV-1042"}},
        "business_object": {"type": "invoice", "id": "INV-1042"},
        "route": {"role": ROLE},
        **overrides,
    }


def race(world: World, request_id: str, verdicts: list[str]) -> list[httpx.Response]:
    """POST one decision per verdict, each from a different reviewer, all at the same moment."""
    tokens = [world.reviewer_token(ROLE) for _ in verdicts]
    barrier = threading.Barrier(len(verdicts))
    responses: list[httpx.Response | BaseException | None] = [None] * len(verdicts)

    def decide(index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index]}"}
        try:
            with httpx.Client(base_url=world.url, headers=headers, timeout=60) as client:
                client.get("/healthz").raise_for_status()  # connect before the race starts
                barrier.wait(timeout=30)
                responses[index] = client.post(
                    f"/v1/requests/{request_id}/decisions",
                    json={"verdict": verdicts[index], "comment": f"reviewer {index}"},
                )
        except BaseException as exc:  # reported below, with the others
            barrier.abort()
            responses[index] = exc

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(len(verdicts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a decision never returned"
    failed = [r for r in responses if not isinstance(r, httpx.Response)]
    assert not failed, failed
    return [r for r in responses if isinstance(r, httpx.Response)]


def read(world: World, request_id: str) -> tuple[dict[str, Any], list[str]]:
    """The request and its timeline's event types, as an admin sees them."""
    admin = {"Authorization": f"Bearer {world.reviewer_token('admin')}"}
    with httpx.Client(base_url=world.url, headers=admin, timeout=30) as client:
        request = client.get(f"/v1/requests/{request_id}")
        timeline = client.get(f"/v1/requests/{request_id}/timeline")
    assert request.status_code == 200, request.text
    assert timeline.status_code == 200, timeline.text
    return request.json(), [event["type"] for event in timeline.json()]


def create(world: World, body: dict[str, Any]) -> str:
    agent = {"Authorization": f"Bearer {world.agent_key()}"}
    with httpx.Client(base_url=world.url, headers=agent, timeout=30) as client:
        response = client.post("/v1/requests", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_fifty_conflicting_decisions_one_wins(world: World) -> None:
    request_id = create(world, invoice())
    verdicts = ["approve" if i % 2 else "reject" for i in range(50)]

    responses = race(world, request_id, verdicts)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: 49}, statuses
    (winner,) = [r for r in responses if r.status_code == 200]
    for loser in responses:
        if loser.status_code == 409:
            assert loser.json()["error"]["code"] == "request_closed", loser.text
    won = winner.json()
    assert won["status"] in {"approved", "rejected"}

    request, events = read(world, request_id)
    assert request["status"] == won["status"]
    assert len(request["decisions"]) == 1, request["decisions"]
    assert request["decisions"][0] == won["decisions"][0]
    assert events.count("request.decided") == 1, events
    assert "request.approval_recorded" not in events


def test_threshold_quorum_race_records_exactly_two_approvals(world: World) -> None:
    request_id = create(world, invoice(approvals={"mode": "threshold", "required": 2}))

    responses = race(world, request_id, ["approve"] * 20)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 2, 409: 18}, statuses
    accepted = sorted((r.json() for r in responses if r.status_code == 200), key=_decisions)
    assert [a["status"] for a in accepted] == ["pending", "approved"]
    for loser in responses:
        if loser.status_code == 409:
            assert loser.json()["error"]["code"] == "request_closed", loser.text

    request, events = read(world, request_id)
    assert request["status"] == "approved"
    approvers = [d["decided_by"]["user"] for d in request["decisions"]]
    assert len(approvers) == 2, request["decisions"]
    assert len(set(approvers)) == 2
    assert [d["verdict"] for d in request["decisions"]] == ["approve", "approve"]
    assert events.count("request.approval_recorded") == 1, events
    assert events.count("request.decided") == 1, events
    assert events.index("request.approval_recorded") < events.index("request.decided")


def _decisions(request: dict[str, Any]) -> int:
    return len(request["decisions"])
