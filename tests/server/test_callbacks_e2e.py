"""Signed callbacks end to end: a real server, a real receiver on a loopback port, real HTTP.

Every callback is verified by the core `CallbackReceiver` with a `Verifier` pinned to the key
from `GET /v1/keys`; in HMAC mode the same callbacks also verify with `standardwebhooks`.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

import signoff
from signoff import CallbackStatus, Status, Verdict, Verifier
from signoff.errors import SignatureError
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


def _delivered(client: signoff.Client, request_id: str) -> bool:
    return client.get_request(request_id).callback_status is CallbackStatus.DELIVERED


def test_every_way_of_closing_delivers_one_verified_callback(
    store_url: str, tmp_path: Path
) -> None:
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key("finance-agent"))
        reviewer = world.client(world.reviewer_token("finance-approver"))
        with Receiver(pinned_verifier(agent)) as receiver:
            cases: dict[str, signoff.Request] = {}
            for case in ("approve", "reject", "edit", "respond", "cancel", "expire"):
                extra = {"sla": "PT1S"} if case == "expire" else {}
                cases[case] = agent.create_request(
                    invoice(receiver.url, correlation={"thread_id": f"t-{case}"}, **extra)
                )
            reviewer.decide(cases["approve"].id, Verdict.APPROVE, comment="matches PO-7781")
            reviewer.decide(cases["reject"].id, Verdict.REJECT, comment="duplicate")
            reviewer.decide(
                cases["edit"].id, Verdict.EDIT, arguments={"amount": "12250.00"}, comment="2%"
            )
            reviewer.decide(
                cases["respond"].id, Verdict.RESPOND, comment="ask for the early-payment discount"
            )
            agent.cancel(cases["cancel"].id, reason="superseded")

            wait_for("six callbacks", lambda: len(receiver.events) == 6)
            wait_for(
                "every callback_status delivered",
                lambda: all(_delivered(agent, r.id) for r in cases.values()),
            )

        # Every delivery verified (a forged or altered one would have been answered 401).
        assert [d.answered for d in receiver.deliveries] == [200] * 6
        by_thread = {e.data.request.correlation["thread_id"]: e for e in receiver.events}
        expected = {
            "approve": ("request.decided", Status.APPROVED),
            "reject": ("request.decided", Status.REJECTED),
            "edit": ("request.decided", Status.APPROVED),
            "respond": ("request.decided", Status.RESPONDED),
            "cancel": ("request.cancelled", Status.CANCELLED),
            "expire": ("request.expired", Status.EXPIRED),
        }
        for case, (event_type, status) in expected.items():
            event = by_thread[f"t-{case}"]
            request = event.data.request
            assert (event.type, request.status) == (event_type, status), case
            assert event.id.startswith("evt_")
            assert request.id == cases[case].id
            assert request.callback_status is CallbackStatus.PENDING  # as of the closing
            (delivery,) = receiver.of(event.id)
            assert delivery.webhook_id == event.id
            assert [s.split(",")[0] for s in delivery.signatures] == ["v1a"]  # Ed25519 only

            timeline = timeline_types(agent, request.id)
            assert timeline[-3:] == ["callback.queued", "callback.attempted", "callback.delivered"]
            (attempt,) = events_of(agent, request.id, "callback.attempted")
            assert attempt["status_code"] == 200
            assert attempt["result"] == "delivered"
            assert attempt["target"] == f"http://127.0.0.1:{receiver.port}"  # never the path
            assert isinstance(attempt["latency_ms"], float)
        assert by_thread["t-edit"].data.request.effective_arguments == {"amount": "12250.00"}
        assert by_thread["t-respond"].data.request.decisions[-1].comment == (
            "ask for the early-payment discount"
        )


def test_a_request_without_callback_url_has_no_callback_state(
    store_url: str, tmp_path: Path
) -> None:
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        created = agent.create_request(invoice(None))
        decided = reviewer.decide(created.id, Verdict.APPROVE)
        assert decided.callback_status is None
        assert not any(t.startswith("callback.") for t in timeline_types(agent, created.id))


def test_hmac_mode_verifies_with_standardwebhooks_too(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key("n8n-agent"))
        reviewer = world.client(world.reviewer_token("finance-approver"))
        minted = runner.invoke(
            cli, ["webhook-keys", "hmac-create", "--agent", "n8n-agent", "--db", store_url]
        )
        assert minted.exit_code == 0, minted.output
        secret = minted.stdout.strip()
        assert secret.startswith("whsec_")
        assert "\n" not in secret  # the secret alone on stdout

        ed25519 = pinned_verifier(agent)
        with Receiver(Verifier([secret])) as receiver:  # this receiver checks v1 (HMAC) only
            ids = []
            for verdict in (Verdict.APPROVE, Verdict.REJECT):
                created = agent.create_request(invoice(receiver.url))
                reviewer.decide(created.id, verdict)
                ids.append(created.id)
            wait_for("two callbacks", lambda: len(receiver.events) == 2)

        reference = Webhook(secret)
        for delivery in receiver.deliveries:
            assert delivery.answered == 200
            assert sorted(s.split(",")[0] for s in delivery.signatures) == ["v1", "v1a"]
            # The reference implementation accepts it (it skips the v1a entry)...
            payload = reference.verify(delivery.body, delivery.headers)
            assert payload["id"] == delivery.webhook_id
            # ...and the Ed25519 signature pinned from /v1/keys verifies the very same bytes.
            assert ed25519.verify(delivery.body, delivery.headers).id == delivery.webhook_id

        # Another agent's callbacks carry no v1 signature: the secret is per agent.
        other = world.client(world.agent_key("other-agent"))
        with Receiver(ed25519) as plain:
            created = other.create_request(invoice(plain.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for("the other agent's callback", lambda: len(plain.events) == 1)
        (delivery,) = plain.deliveries
        assert [s.split(",")[0] for s in delivery.signatures] == ["v1a"]

        # The secret appears nowhere an operator or auditor reads.
        listed = runner.invoke(cli, ["webhook-keys", "hmac-list", "--db", store_url])
        assert listed.exit_code == 0
        assert "n8n-agent" in listed.stdout
        assert secret not in listed.output
        for request_id in ids:
            assert secret not in str([e.data for e in agent.timeline(request_id)])


def test_receiver_down_then_back_delivers_under_one_webhook_id(
    store_url: str, tmp_path: Path
) -> None:
    with callback_world(store_url, tmp_path, callback_retry_delays=(1.1, 1.1, 1.1, 60)) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        receiver = Receiver(pinned_verifier(agent))  # not started: the port refuses connections
        created = agent.create_request(invoice(receiver.url))
        reviewer.decide(created.id, Verdict.APPROVE)

        wait_for(
            "two failed attempts",
            lambda: len(events_of(agent, created.id, "callback.attempted")) >= 2,
        )
        assert agent.get_request(created.id).callback_status is CallbackStatus.PENDING
        failed = events_of(agent, created.id, "callback.attempted")
        assert all(a["result"] == "retry" and a["status_code"] is None for a in failed)
        assert all("ConnectError" in str(a["error"]) for a in failed)
        assert all(a["next_attempt_at"] for a in failed)

        with receiver:
            wait_for("the delivery", lambda: _delivered(agent, created.id))
        (event,) = receiver.events
        assert event.data.request.id == created.id
        attempts = events_of(agent, created.id, "callback.attempted")
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
        assert {a["event_id"] for a in attempts} == {event.id}
        assert attempts[-1]["result"] == "delivered"
        assert "callback.failed" not in timeline_types(agent, created.id)


def test_each_attempt_is_signed_afresh_under_the_same_id(store_url: str, tmp_path: Path) -> None:
    # Retries 1.1 s apart: each attempt's timestamp is a later second, so its signature differs.
    with callback_world(store_url, tmp_path, callback_retry_delays=(1.3, 1.3, 60)) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        verifier = pinned_verifier(agent)
        with Receiver(verifier, answer=lambda n: 503 if n < 2 else None) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for("the delivery", lambda: _delivered(agent, created.id))

        assert [d.answered for d in receiver.deliveries] == [503, 503, 200]
        assert len({d.webhook_id for d in receiver.deliveries}) == 1
        assert len({d.body for d in receiver.deliveries}) == 1  # the same bytes every time
        stamps = [int(d.headers["webhook-timestamp"]) for d in receiver.deliveries]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == 3
        assert len({d.headers["webhook-signature"] for d in receiver.deliveries}) == 3
        for delivery in receiver.deliveries:  # every attempt verifies on its own
            verifier.verify(delivery.body, delivery.headers)
        results = [a["status_code"] for a in events_of(agent, created.id, "callback.attempted")]
        assert results == [503, 503, 200]


@pytest.mark.parametrize("status", [410, 404, 409])
def test_gone_not_found_and_conflict_end_the_retries(
    store_url: str, tmp_path: Path, status: int
) -> None:
    with callback_world(store_url, tmp_path, callback_retry_delays=(0.2, 0.2, 0.2)) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        with Receiver(answer=lambda _n: status) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for("the refusal", lambda: "callback.refused" in timeline_types(agent, created.id))
            time.sleep(1.0)  # longer than every retry delay together: none may come
        assert len(receiver.deliveries) == 1
        assert agent.get_request(created.id).callback_status is CallbackStatus.FAILED
        types = timeline_types(agent, created.id)
        assert types[-2:] == ["callback.attempted", "callback.refused"]
        assert "callback.failed" not in types
        (refused,) = events_of(agent, created.id, "callback.refused")
        assert refused["status_code"] == status


def test_redirects_are_not_followed(store_url: str, tmp_path: Path) -> None:
    with callback_world(store_url, tmp_path, callback_retry_delays=(60,)) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        with (
            Receiver(pinned_verifier(agent)) as elsewhere,
            Receiver(answer=lambda _n: 307, location=elsewhere.url) as redirecting,
        ):
            created = agent.create_request(invoice(redirecting.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for(
                "the attempt", lambda: bool(events_of(agent, created.id, "callback.attempted"))
            )
        assert len(redirecting.deliveries) == 1
        assert elsewhere.deliveries == []
        (attempt,) = events_of(agent, created.id, "callback.attempted")
        assert (attempt["status_code"], attempt["result"]) == (307, "retry")
        assert agent.get_request(created.id).callback_status is CallbackStatus.PENDING


def test_a_decision_never_waits_for_delivery(store_url: str, tmp_path: Path) -> None:
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        with Receiver(pinned_verifier(agent), delay=3.0) as slow:
            created = agent.create_request(invoice(slow.url))
            started = time.monotonic()
            decided = reviewer.decide(created.id, Verdict.APPROVE)
            answered_after = time.monotonic() - started
            assert decided.status is Status.APPROVED
            assert answered_after < 1.5  # the receiver takes 3 s to answer
            assert agent.get_request(created.id).callback_status is CallbackStatus.PENDING
            wait_for("the slow delivery", lambda: _delivered(agent, created.id))
        assert len(slow.events) == 1


def test_disallowed_callback_url_is_refused_at_creation(store_url: str, tmp_path: Path) -> None:
    allow = ("hooks.example.com", "*.agents.example.com", "127.0.0.0/8")
    with callback_world(store_url, tmp_path, callback_allow=allow) as world:
        agent = world.client(world.agent_key())
        refused = {
            "http://evil.example.net/hook": "evil.example.net is not in the callback allow-list",
            "https://10.1.2.3/hook": "10.1.2.3 is not in the callback allow-list",
            # a wildcard matches sub-domains only
            "https://agents.example.com/hook": "agents.example.com is not in the callback allow",
        }
        for url, reason in refused.items():
            with pytest.raises(signoff.ValidationFailed) as caught:
                agent.create_request(invoice(url))
            assert caught.value.status_code == 422
            assert "callback.url" in str(caught.value)
            assert reason in str(caught.value)
            assert caught.value.details[0]["loc"] == ["callback", "url"]
        # Not http(s): refused by the model (the client checks before sending; so does the server).
        key = world.agent_key()
        answer = httpx.post(
            f"{world.url}/v1/requests",
            json=invoice("ftp://hooks.example.com/x"),
            headers={"authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 422
        assert answer.json()["error"]["message"].startswith("callback.url:")

        for url in (
            "https://hooks.example.com/n8n/webhook-waiting/42",
            "https://n8n.agents.example.com/resume",
            "http://127.0.0.1:9/x",
        ):
            assert agent.create_request(invoice(url)).callback is not None


def test_keys_are_public_and_the_key_file_private(store_url: str, tmp_path: Path) -> None:
    with callback_world(store_url, tmp_path) as world:
        response = httpx.get(f"{world.url}/v1/keys")  # no credentials
        assert response.status_code == 200
        (key,) = response.json()["webhook_keys"]
        assert key["public_key"].startswith("whpk_")
        assert key["id"].startswith("whk_")
        assert (key["scheme"], key["algorithm"]) == ("v1a", "ed25519")
        assert key["valid_from"]
        assert key["valid_until"] is None
        assert "whsk_" not in response.text
    key_file = tmp_path / "webhook-keys.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "whsk_" in key_file.read_text()

    # A restart keeps the key: receivers pinned to it keep verifying.
    with callback_world(store_url, tmp_path) as world:
        (again,) = httpx.get(f"{world.url}/v1/keys").json()["webhook_keys"]
        assert again["public_key"] == key["public_key"]


def test_replay_resends_under_the_same_id(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        with Receiver(pinned_verifier(agent)) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for("the delivery", lambda: _delivered(agent, created.id))

            replayed = runner.invoke(cli, ["webhooks", "replay", created.id, "--db", store_url])
            assert replayed.exit_code == 0, replayed.output
            wait_for("the second delivery", lambda: len(receiver.deliveries) == 2)
            wait_for("delivered again", lambda: _delivered(agent, created.id))

            status = runner.invoke(cli, ["webhooks", "status", created.id, "--db", store_url])
            assert status.exit_code == 0
            assert "delivered" in status.stdout

            # A request that never had a callback cannot be replayed.
            plain = agent.create_request(invoice(None))
            refused = runner.invoke(cli, ["webhooks", "replay", plain.id, "--db", store_url])
            assert refused.exit_code == 2
            assert "no callback" in refused.output

        first, second = receiver.deliveries
        assert first.webhook_id == second.webhook_id
        assert first.body == second.body
        assert len(receiver.events) == 1  # the receiver's dedupe saw the same id twice
        types = timeline_types(agent, created.id)
        assert types.count("callback.delivered") == 2
        assert "callback.replayed" in types


def test_a_forged_callback_never_verifies(store_url: str, tmp_path: Path) -> None:
    """The pinned verifier is what protects the receiver: a body altered after signing, or a
    delivery signed with another key, is refused."""
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))
        verifier = pinned_verifier(agent)
        with Receiver(answer=lambda _n: 200) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.REJECT)
            wait_for("the delivery", lambda: len(receiver.deliveries) == 1)
        (delivery,) = receiver.deliveries
        assert verifier.verify(delivery.body, delivery.headers).data.request.status is (
            Status.REJECTED
        )
        forged = delivery.body.replace(b'"rejected"', b'"approved"')
        assert forged != delivery.body
        with pytest.raises(SignatureError):
            verifier.verify(forged, delivery.headers)
