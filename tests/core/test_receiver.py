"""CallbackReceiver: verify, deduplicate, dispatch; directly, as an ASGI app and as a WSGI app."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from signoff import CallbackEvent, CallbackReceiver, CallbackRefused, Verifier
from signoff.receiver import DedupeStore, MemoryDedupeStore, SqliteDedupeStore
from signoff.webhooks import generate_signing_key, sign

NOW = 1_735_689_600
KEY = generate_signing_key()
STRANGER = generate_signing_key()
EventBody = Callable[..., bytes]


class Recorder:
    """Records the events it is given; raises for the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[CallbackEvent] = []
        self.failures = failures

    def record(self, event: CallbackEvent) -> None:
        self.events.append(event)
        if len(self.events) <= self.failures:
            raise RuntimeError("downstream is down")


class Handler(Recorder):
    def __call__(self, event: CallbackEvent) -> None:
        self.record(event)


class AsyncHandler(Recorder):
    async def __call__(self, event: CallbackEvent) -> None:
        self.record(event)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DedupeStore:
    if request.param == "memory":
        return MemoryDedupeStore()
    return SqliteDedupeStore(tmp_path / "dedupe.db")


def verifier() -> Verifier:
    return Verifier([KEY.public], clock=lambda: NOW)


def delivery(body: bytes, event_id: str, *, key: str = KEY.secret) -> dict[str, str]:
    """The headers of one signed delivery of `body` (as the server sends them)."""
    return sign(body, msg_id=event_id, keys=[key], timestamp=NOW)


# Receiver.handle / ahandle ---------------------------------------------------------------------


def test_first_delivery_runs_the_handler(store: DedupeStore, make_event_body: EventBody) -> None:
    handler = Handler()
    receiver = CallbackReceiver(verifier(), handler, store=store)
    receipt = receiver.handle(make_event_body("evt_1"), delivery(make_event_body("evt_1"), "evt_1"))
    assert (receipt.status_code, receipt.duplicate, receipt.error) == (200, False, None)
    assert receipt.event is not None
    assert receipt.event.id == "evt_1"
    assert [event.id for event in handler.events] == ["evt_1"]
    assert json.loads(receipt.body()) == {"ok": True, "duplicate": False}


def test_a_duplicate_is_acknowledged_without_running_the_handler(
    store: DedupeStore, make_event_body: EventBody
) -> None:
    handler = Handler()
    receiver = CallbackReceiver(verifier(), handler, store=store)
    body = make_event_body("evt_1")
    assert receiver.handle(body, delivery(body, "evt_1")).status_code == 200
    again = receiver.handle(body, delivery(body, "evt_1"))
    assert (again.status_code, again.duplicate) == (200, True)
    assert json.loads(again.body()) == {"ok": True, "duplicate": True}
    assert len(handler.events) == 1


def test_a_forged_delivery_is_401_and_never_reaches_the_handler(
    store: DedupeStore, make_event_body: EventBody
) -> None:
    handler = Handler()
    receiver = CallbackReceiver(verifier(), handler, store=store)
    body = make_event_body("evt_1")
    forged = receiver.handle(body, delivery(body, "evt_1", key=STRANGER.secret))
    assert (forged.status_code, forged.event) == (401, None)
    assert forged.error == "no signature matches a known key"
    assert handler.events == []
    # The forgery did not claim the id: the genuine delivery still runs the handler.
    assert receiver.handle(body, delivery(body, "evt_1")).status_code == 200
    assert len(handler.events) == 1


def test_a_failing_handler_is_500_and_the_redelivery_runs_it_again(
    store: DedupeStore, make_event_body: EventBody
) -> None:
    handler = Handler(failures=1)
    receiver = CallbackReceiver(verifier(), handler, store=store)
    body = make_event_body("evt_1")
    failed = receiver.handle(body, delivery(body, "evt_1"))
    assert (failed.status_code, failed.error) == (500, "handler failed: RuntimeError")
    retried = receiver.handle(body, delivery(body, "evt_1"))
    assert (retried.status_code, retried.duplicate) == (200, False)
    assert len(handler.events) == 2
    assert receiver.handle(body, delivery(body, "evt_1")).duplicate


def test_a_handler_refusing_the_callback_is_409_and_the_id_stays_claimed(
    store: DedupeStore, make_event_body: EventBody
) -> None:
    def refuse(event: CallbackEvent) -> None:
        raise CallbackRefused(f"{event.id}: the step was already answered")

    receiver = CallbackReceiver(verifier(), refuse, store=store)
    body = make_event_body("evt_1")
    refused = receiver.handle(body, delivery(body, "evt_1"))
    assert (refused.status_code, refused.error) == (409, "evt_1: the step was already answered")
    assert json.loads(refused.body())["ok"] is False
    assert receiver.handle(body, delivery(body, "evt_1")).duplicate


def test_handle_refuses_an_async_handler_without_leaking_the_coroutine(
    make_event_body: EventBody,
) -> None:
    handler = AsyncHandler()
    receiver = CallbackReceiver(verifier(), handler)
    body = make_event_body("evt_1")
    receipt = receiver.handle(body, delivery(body, "evt_1"))
    assert (receipt.status_code, receipt.error) == (500, "handler failed: TypeError")
    assert receiver.store.claim("evt_1"), "the id must be released for a redelivery"


@pytest.mark.anyio
async def test_ahandle_awaits_an_async_handler(
    store: DedupeStore, make_event_body: EventBody
) -> None:
    handler = AsyncHandler(failures=1)
    receiver = CallbackReceiver(verifier(), handler, store=store)
    body = make_event_body("evt_1")
    assert (await receiver.ahandle(body, delivery(body, "evt_1"))).status_code == 500
    assert (await receiver.ahandle(body, delivery(body, "evt_1"))).status_code == 200
    assert (await receiver.ahandle(body, delivery(body, "evt_1"))).duplicate
    assert len(handler.events) == 2


# ASGI and WSGI apps -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("handler_kind", [Handler, AsyncHandler])
async def test_asgi_app(
    store: DedupeStore, make_event_body: EventBody, handler_kind: type[Handler | AsyncHandler]
) -> None:
    handler = handler_kind(failures=1)
    app = CallbackReceiver(verifier(), handler, store=store).asgi_app()
    body = make_event_body("evt_1")
    forged_headers = delivery(body, "evt_1", key=STRANGER.secret)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as http:
        forged = await http.post("/hook", content=body, headers=forged_headers)
        failed = await http.post("/hook", content=body, headers=delivery(body, "evt_1"))
        first = await http.post("/hook", content=body, headers=delivery(body, "evt_1"))
        again = await http.post("/hook", content=body, headers=delivery(body, "evt_1"))
        wrong_method = await http.get("/hook")
        too_large = await http.post("/hook", content=b" " * (4 * 1024 * 1024 + 1))
    assert [r.status_code for r in (forged, failed, first, again, wrong_method, too_large)] == [
        401, 500, 200, 200, 405, 413,
    ]  # fmt: skip
    assert forged.json()["ok"] is False
    assert first.json() == {"ok": True, "duplicate": False}
    assert again.json() == {"ok": True, "duplicate": True}
    assert first.headers["content-type"] == "application/json"
    assert len(handler.events) == 2


def test_wsgi_app(store: DedupeStore, make_event_body: EventBody) -> None:
    handler = Handler(failures=1)
    app = CallbackReceiver(verifier(), handler, store=store).wsgi_app()
    body = make_event_body("evt_1")
    forged_headers = delivery(body, "evt_1", key=STRANGER.secret)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://agent") as http:
        forged = http.post("/hook", content=body, headers=forged_headers)
        failed = http.post("/hook", content=body, headers=delivery(body, "evt_1"))
        first = http.post("/hook", content=body, headers=delivery(body, "evt_1"))
        again = http.post("/hook", content=body, headers=delivery(body, "evt_1"))
        wrong_method = http.get("/hook")
        too_large = http.post("/hook", content=b" " * (4 * 1024 * 1024 + 1))
    assert [r.status_code for r in (forged, failed, first, again, wrong_method, too_large)] == [
        401, 500, 200, 200, 405, 413,
    ]  # fmt: skip
    assert forged.json()["ok"] is False
    assert first.json() == {"ok": True, "duplicate": False}
    assert again.json() == {"ok": True, "duplicate": True}
    assert len(handler.events) == 2


# Dedupe stores under concurrency ---------------------------------------------------------------


def claim_from_threads(stores: list[DedupeStore], webhook_id: str, threads: int = 16) -> list[bool]:
    """Every thread claims `webhook_id` at once, round-robin over `stores`."""
    barrier = threading.Barrier(threads)

    def claim(index: int) -> bool:
        barrier.wait()
        return stores[index % len(stores)].claim(webhook_id)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(claim, range(threads)))


def test_concurrent_claims_of_one_id_have_exactly_one_winner(store: DedupeStore) -> None:
    assert claim_from_threads([store], "evt_1").count(True) == 1


def test_two_sqlite_stores_on_one_file_share_the_claims(tmp_path: Path) -> None:
    stores: list[DedupeStore] = [
        SqliteDedupeStore(tmp_path / "dedupe.db"),
        SqliteDedupeStore(tmp_path / "dedupe.db"),
    ]
    assert claim_from_threads(stores, "evt_1").count(True) == 1
    assert claim_from_threads(stores, "evt_2").count(True) == 1


def test_concurrent_deliveries_of_one_event_run_the_handler_once(
    store: DedupeStore, make_event_body: EventBody
) -> None:
    handler = Handler()
    receiver = CallbackReceiver(verifier(), handler, store=store)
    body = make_event_body("evt_1")
    headers = delivery(body, "evt_1")
    barrier = threading.Barrier(8)

    def deliver(_: int) -> bool:
        barrier.wait()
        return receiver.handle(body, headers).duplicate

    with ThreadPoolExecutor(max_workers=8) as pool:
        duplicates = list(pool.map(deliver, range(8)))
    assert duplicates.count(False) == 1
    assert len(handler.events) == 1


# Dedupe store behaviour ------------------------------------------------------------------------


def test_sqlite_store_keeps_claims_over_a_restart(tmp_path: Path) -> None:
    sqlite_path = tmp_path / "dedupe.db"
    assert SqliteDedupeStore(sqlite_path).claim("evt_1")
    reopened = SqliteDedupeStore(sqlite_path)
    assert not reopened.claim("evt_1")
    reopened.release("evt_1")
    assert SqliteDedupeStore(sqlite_path).claim("evt_1")


def test_release_of_an_unknown_id_is_harmless(store: DedupeStore) -> None:
    store.release("evt_never_seen")
    assert store.claim("evt_never_seen")


def test_memory_store_forgets_the_oldest_ids_beyond_its_bound() -> None:
    store = MemoryDedupeStore(max_entries=2)
    assert [store.claim(i) for i in ("evt_1", "evt_2", "evt_3")] == [True, True, True]
    assert not store.claim("evt_3")
    assert not store.claim("evt_2")
    assert store.claim("evt_1"), "the oldest id was evicted"
