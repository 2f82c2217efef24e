"""Separation of duties, enforced by the server whatever the channel (DESIGN.md §5, §11).

Already covered elsewhere: an agent key never decides (tests/server/test_authz_matrix.py, every
agent and endpoint); the initiator cannot approve over the API, however the email is spelled
(test_authz_matrix.py) nor in a bulk decision (test_inbox_pages.py); a threshold quorum needs
distinct people, also when they race (test_lifecycle_e2e.py, test_concurrent_decisions.py,
tests/reliability/test_lifecycle_state_machine.py, which also checks that an agent cannot waive
separation of duties against a policy file).

Here: the initiator can neither approve nor edit on the inbox's own decision form or the API,
even as an admin, and may still refuse; one person holding two roles cannot fill both seats of
an `all_of` quorum; and what an admin may decide, against DESIGN.md §11.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ROLE, Live, bearer, csrf_of, error_of, invoice, live_server, sign_in

IVY, ALICE, LEO = "ivy@example.com", "alice@example.com", "leo@example.com"
ADMIN_IVY = "ivy-admin@example.com"
LEGAL = "legal"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server("sqlite", tmp_path_factory.mktemp("sod")) as server:
        server.person(IVY, ROLE)
        server.person(ALICE, ROLE, LEGAL)
        server.person(LEO, LEGAL)
        server.person(ADMIN_IVY, ROLE, "admin")
        yield server


@pytest.fixture(scope="module")
def api(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def agent(live: Live) -> dict[str, str]:
    return bearer(live.agent_key())


def create(api: httpx.Client, agent: dict[str, str], **overrides: Any) -> str:
    made = api.post("/v1/requests", json=invoice(**overrides), headers=agent)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def state(api: httpx.Client, agent: dict[str, str], request_id: str) -> tuple[str, list[str]]:
    body = api.get(f"/v1/requests/{request_id}", headers=agent).json()
    return body["status"], [d["decided_by"]["user"] for d in body["decisions"]]


def decide(live: Live, api: httpx.Client, who: str, request_id: str, **body: Any) -> httpx.Response:
    token = live.reviewer_token(*_roles(who), email=who)
    return api.post(f"/v1/requests/{request_id}/decisions", json=body, headers=bearer(token))


def _roles(who: str) -> list[str]:
    return {
        IVY: [ROLE],
        ALICE: [ROLE, LEGAL],
        LEO: [LEGAL],
        ADMIN_IVY: [ROLE, "admin"],
    }[who]


@pytest.mark.parametrize("who", [IVY, ADMIN_IVY], ids=["reviewer", "admin"])
@pytest.mark.parametrize(
    "body",
    [{"verdict": "approve"}, {"verdict": "edit", "arguments": {"invoice_id": "INV-1"}}],
    ids=["approve", "edit"],
)
def test_the_initiator_cannot_approve_over_the_api(
    live: Live, api: httpx.Client, agent: dict[str, str], who: str, body: dict[str, Any]
) -> None:
    request_id = create(api, agent, initiator=who)
    refused = decide(live, api, who, request_id, **body)
    assert refused.status_code == 403, refused.text
    assert error_of(refused)["code"] == "separation_of_duties"
    assert state(api, agent, request_id) == ("pending", [])


def test_the_initiator_may_still_refuse(
    live: Live, api: httpx.Client, agent: dict[str, str]
) -> None:
    """Separation of duties keeps the initiator from approving, not from stopping their run."""
    request_id = create(api, agent, initiator=IVY)
    assert decide(live, api, IVY, request_id, verdict="reject").status_code == 200
    assert state(api, agent, request_id) == ("rejected", [IVY])


def test_the_initiator_cannot_approve_on_the_inbox_form(
    live: Live, api: httpx.Client, agent: dict[str, str]
) -> None:
    request_id = create(api, agent, initiator=IVY)
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        assert sign_in(browser, IVY).status_code == 303
        page = browser.get(f"/requests/{request_id}")
        assert page.status_code == 200
        for form in ({"verdict": "approve"}, {"verdict": "edit", "arguments": "{}"}):
            answer = browser.post(
                f"/requests/{request_id}/decide", data={"csrf": csrf_of(page.text), **form}
            )
            assert answer.status_code == 403, answer.text[:500]
            assert "separation of duties" in answer.text
    assert state(api, agent, request_id) == ("pending", [])


def test_one_person_cannot_fill_two_seats_of_an_all_of_quorum(
    live: Live, api: httpx.Client, agent: dict[str, str]
) -> None:
    """Alice holds both roles of an all_of [finance-approver, legal] quorum: she counts once."""
    request_id = create(api, agent, approvals={"mode": "all_of", "roles": [ROLE, LEGAL]})
    assert decide(live, api, ALICE, request_id, verdict="approve").status_code == 200
    again = decide(live, api, ALICE, request_id, verdict="approve")
    assert again.status_code == 409, again.text
    assert error_of(again)["code"] == "already_approved"
    assert state(api, agent, request_id) == ("pending", [ALICE])
    assert decide(live, api, LEO, request_id, verdict="approve").status_code == 200
    assert state(api, agent, request_id) == ("approved", [ALICE, LEO])


# DESIGN.md §11: "A reviewer decides only requests routed to a role they hold (or escalated to)";
# the admin row of §4 names cancelling, not deciding. An admin sees every request but is no
# stand-in for the role it is routed to (test_authz_matrix.py pins "decide" as 403 for admins).


def test_an_admin_outside_the_role_does_not_count_toward_its_quorum(
    live: Live, api: httpx.Client, agent: dict[str, str]
) -> None:
    admin = bearer(live.reviewer_token("admin"))
    request_id = create(api, agent, approvals={"mode": "threshold", "required": 2})
    assert decide(live, api, ALICE, request_id, verdict="approve").status_code == 200
    by_admin = api.post(
        f"/v1/requests/{request_id}/decisions", json={"verdict": "approve"}, headers=admin
    )
    assert by_admin.status_code == 403, by_admin.text
    assert state(api, agent, request_id) == ("pending", [ALICE])
