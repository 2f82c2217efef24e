# pyright: strict
"""A 401 answer ends a callback's retries, like 404/409/410: retrying cannot change it.

n8n answers 401 to a resume URL whose token does not match, and signoff's receivers (the core
`CallbackReceiver`, the n8n node) answer 401 to a callback they cannot verify. Sending the same
signed bytes again for three days changes neither, so the callback is recorded as refused at
once (with the status and why) and the operator can replay it once the receiver is fixed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff import CallbackStatus, Verdict, Verifier
from signoff.webhooks import generate_signing_key
from signoff_server.callbacks.delivery import REFUSING_STATUSES
from signoff_server.cli import app as cli

from .callback_support import (
    Receiver,
    callback_world,
    events_of,
    invoice,
    pinned_verifier,
    timeline_types,
    wait_for,
)

DELAYS = (0.2, 0.2, 0.2)


def test_401_is_a_refusing_status() -> None:
    assert {401, 404, 409, 410} <= REFUSING_STATUSES
    assert not {403, 429, 500, 502, 503} & REFUSING_STATUSES


def test_a_receiver_that_cannot_verify_ends_the_retries_and_replay_recovers(
    store_url: str, tmp_path: Path
) -> None:
    with callback_world(store_url, tmp_path, callback_retry_delays=DELAYS) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        # A real receiver pinned to the wrong key: it answers 401 to the genuine callback.
        wrong = Verifier([generate_signing_key().public])
        with Receiver(wrong) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for("the refusal", lambda: "callback.refused" in timeline_types(agent, created.id))
            time.sleep(1.0)  # longer than every retry delay together: none may come
        assert [d.answered for d in receiver.deliveries] == [401]
        assert receiver.events == []
        assert agent.get_request(created.id).callback_status is CallbackStatus.FAILED
        types = timeline_types(agent, created.id)
        assert types[-2:] == ["callback.attempted", "callback.refused"]
        assert "callback.failed" not in types
        (attempt,) = events_of(agent, created.id, "callback.attempted")
        assert (attempt["status_code"], attempt["result"]) == (401, "refused")
        assert attempt["next_attempt_at"] is None
        assert str(attempt["error"]).startswith("HTTP 401 unauthorized")
        (refused,) = events_of(agent, created.id, "callback.refused")
        assert refused["status_code"] == 401
        assert "did not accept the signature" in str(refused["reason"])

        # The receiver is fixed (pinned to the server's key, same URL): a replay delivers it.
        with Receiver(pinned_verifier(agent), port=receiver.port) as fixed:
            replayed = CliRunner().invoke(
                cli, ["webhooks", "replay", created.id, "--db", store_url]
            )
            assert replayed.exit_code == 0, replayed.output
            wait_for(
                "the replayed delivery",
                lambda: agent.get_request(created.id).callback_status is CallbackStatus.DELIVERED,
            )
        assert [d.answered for d in fixed.deliveries] == [200]
        assert [e.data.request.id for e in fixed.events] == [created.id]


@pytest.mark.parametrize("status", [403, 500])
def test_other_errors_still_retry(store_url: str, tmp_path: Path, status: int) -> None:
    with callback_world(store_url, tmp_path, callback_retry_delays=DELAYS) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        with Receiver(answer=lambda n: status if n < 2 else 200) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for(
                "the delivery",
                lambda: agent.get_request(created.id).callback_status is CallbackStatus.DELIVERED,
            )
        assert [d.answered for d in receiver.deliveries] == [status, status, 200]
        assert "callback.refused" not in timeline_types(agent, created.id)
