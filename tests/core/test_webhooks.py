"""Standard Webhooks signing and verification: shared vectors, spec examples, key forms, and
properties (sign -> verify round-trips; any change or garbage is a SignatureError, never else)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from signoff import SignatureError, Verifier
from signoff.webhooks import (
    DEFAULT_TOLERANCE,
    SignedMessage,
    Signer,
    generate_hmac_secret,
    generate_signing_key,
    public_key_for,
    sign,
)

# Each example takes microseconds; a loaded CI machine must not make it a flaky DeadlineExceeded.
no_deadline = settings(deadline=None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


VECTORS_FILE = Path(__file__).parents[1] / "vectors" / "webhooks.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = VECTORS["cases"]

# The examples published by the Standard Webhooks spec (FRAMEWORKS.md), typed in independently of
# the vectors file so that a regenerated file cannot silently change them.
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_V1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_WHSK64 = (
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
)
SPEC_WHSK32 = "whsk_" + b64(base64.b64decode(SPEC_WHSK64[5:])[:32])
SPEC_WHPK = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
SPEC_V1A = (
    "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
)

HMAC_KEY = generate_hmac_secret()
ED_KEY = generate_signing_key()
ED_KEY_64 = "whsk_" + b64(base64.b64decode(ED_KEY.secret[5:]) + base64.b64decode(ED_KEY.public[5:]))
# (signing key, verifying key) for each scheme and whsk_ form.
KEY_PAIRS = [
    (HMAC_KEY, HMAC_KEY),
    (ED_KEY.secret, ED_KEY.public),
    (ED_KEY_64, ED_KEY.public),
]
NOW = 1_735_689_600


def fixed_clock(now: float) -> Callable[[], float]:
    return lambda: now


def headers_for(msg_id: str, timestamp: str | int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


# Shared vectors -------------------------------------------------------------------------------


def test_vectors_file_is_documented_and_covers_both_schemes() -> None:
    assert VECTORS["description"].startswith("Standard Webhooks test vectors")
    assert VECTORS["tolerance_seconds"] == DEFAULT_TOLERANCE.total_seconds()
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for scheme in ("v1", "v1a"):
        expected = {c["expected"] for c in CASES if c["name"].startswith(f"{scheme} ")}
        assert expected == {"valid", "invalid"}
    for case in CASES:
        assert case["expected"] in ("valid", "invalid")
        assert ("reason" in case) == (case["expected"] == "invalid"), case["name"]
        assert isinstance(case["timestamp"], str)
        assert isinstance(case["now"], int)


def test_vectors_hold_the_spec_published_examples() -> None:
    published = {(c["signature"], c["msg_id"], c["timestamp"], c["body"]) for c in CASES}
    assert (SPEC_V1, SPEC_ID, str(SPEC_TS), SPEC_BODY.decode()) in published
    assert (SPEC_V1A, SPEC_ID, str(SPEC_TS), SPEC_BODY.decode()) in published


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_vector(case: dict[str, Any]) -> None:
    verifier = Verifier(case["verify_keys"], clock=fixed_clock(case["now"]))
    body = case["body"].encode()
    headers = headers_for(case["msg_id"], case["timestamp"], case["signature"])
    if case["expected"] == "valid":
        message = verifier.verify_signature(body, headers)
        assert message == SignedMessage(id=case["msg_id"], timestamp=int(case["timestamp"]))
    else:
        with pytest.raises(SignatureError):
            verifier.verify_signature(body, headers)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c["signing_keys"] and c["expected"] == "valid"],
    ids=lambda c: c["name"],
)
def test_vector_signature_is_reproduced_by_the_signer(case: dict[str, Any]) -> None:
    header = Signer(case["signing_keys"]).signature_header(
        case["body"].encode(), msg_id=case["msg_id"], timestamp=int(case["timestamp"])
    )
    assert header == case["signature"]


# The spec's examples and key forms -------------------------------------------------------------


def test_sign_reproduces_the_spec_v1_signature() -> None:
    headers = sign(SPEC_BODY, msg_id=SPEC_ID, keys=[SPEC_WHSEC], timestamp=SPEC_TS)
    assert headers == headers_for(SPEC_ID, SPEC_TS, SPEC_V1)


@pytest.mark.parametrize("whsk", [SPEC_WHSK64, SPEC_WHSK32], ids=["64-byte", "32-byte"])
def test_sign_reproduces_the_spec_v1a_signature(whsk: str) -> None:
    headers = sign(SPEC_BODY, msg_id=SPEC_ID, keys=[whsk], timestamp=SPEC_TS)
    assert headers["webhook-signature"] == SPEC_V1A


@pytest.mark.parametrize("whsk", [SPEC_WHSK64, SPEC_WHSK32], ids=["64-byte", "32-byte"])
def test_both_whsk_lengths_give_the_spec_public_key_and_verify(whsk: str) -> None:
    assert public_key_for(whsk) == SPEC_WHPK
    verifier = Verifier([whsk], clock=fixed_clock(SPEC_TS))
    message = verifier.verify_signature(SPEC_BODY, headers_for(SPEC_ID, SPEC_TS, SPEC_V1A))
    assert message == SignedMessage(SPEC_ID, SPEC_TS)


def test_rotation_header_carries_every_key_v1a_first() -> None:
    other = generate_signing_key()
    header = Signer([HMAC_KEY, ED_KEY.secret, other.secret]).signature_header(
        b"{}", msg_id="evt_1", timestamp=NOW
    )
    assert [entry.split(",")[0] for entry in header.split(" ")] == ["v1a", "v1a", "v1"]
    for key in (HMAC_KEY, ED_KEY.public, other.public):
        verifier = Verifier([key], clock=fixed_clock(NOW))
        assert verifier.verify_signature(b"{}", headers_for("evt_1", NOW, header)).id == "evt_1"


def test_sign_defaults_the_timestamp_to_now() -> None:
    before = int(time.time())
    headers = sign(b"{}", msg_id="evt_1", keys=[HMAC_KEY])
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    assert Verifier([HMAC_KEY]).verify_signature(b"{}", headers).id == "evt_1"


def test_generated_keys_are_well_formed() -> None:
    pair = generate_signing_key()
    assert pair.secret.startswith("whsk_")
    assert len(base64.b64decode(pair.secret[5:])) == 32
    assert public_key_for(pair.secret) == pair.public
    assert len(base64.b64decode(pair.public.removeprefix("whpk_"))) == 32
    secret = generate_hmac_secret()
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != generate_hmac_secret()


def _mismatched_64_byte_key() -> str:
    seed = base64.b64decode(SPEC_WHSK32[5:])
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return "whsk_" + b64(seed + stranger)


@pytest.mark.parametrize(
    "build",
    [
        lambda key: Verifier([key]),
        lambda key: Signer([key]),
        lambda key: public_key_for(key),
    ],
    ids=["Verifier", "Signer", "public_key_for"],
)
def test_64_byte_whsk_with_mismatched_halves_is_refused(build: Callable[[str], object]) -> None:
    with pytest.raises(ValueError, match="public half"):
        build(_mismatched_64_byte_key())


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "at least one key"),
        (["sk_live_123"], "start with"),
        (["whsk_" + b64(bytes(48))], "32 or 64 bytes"),
        (["whpk_" + b64(bytes(31))], "32 bytes"),
        (["whpk_not base64!"], "not valid base64"),
        (["whsec_%%%"], "not valid base64"),
        (["whsec_"], "must not be empty"),
    ],
    ids=["none", "unknown-prefix", "whsk-48", "whpk-31", "whpk-b64", "whsec-b64", "whsec-empty"],
)
def test_bad_verification_keys_are_refused_at_construction(keys: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Verifier(keys)


@pytest.mark.parametrize(
    "keys", [[], ["whpk_" + b64(bytes(32))], ["whsec_"]], ids=["none", "public-key", "empty-hmac"]
)
def test_bad_signing_keys_are_refused(keys: list[str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message differs per case
        Signer(keys)


@pytest.mark.parametrize("tolerance", [timedelta(seconds=10), 10, 10.0], ids=str)
def test_tolerance_accepts_timedelta_or_seconds(tolerance: timedelta | float) -> None:
    headers = sign(b"x", msg_id="evt_1", keys=[HMAC_KEY], timestamp=NOW)
    assert Verifier([HMAC_KEY], tolerance=tolerance, clock=fixed_clock(NOW + 10)).verify_signature(
        b"x", headers
    )
    for now in (NOW + 11, NOW - 11):
        with pytest.raises(SignatureError, match="tolerance"):
            Verifier([HMAC_KEY], tolerance=tolerance, clock=fixed_clock(now)).verify_signature(
                b"x", headers
            )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_a_signature_error(missing: str) -> None:
    headers = sign(b"x", msg_id="evt_1", keys=[HMAC_KEY], timestamp=NOW)
    del headers[missing]
    with pytest.raises(SignatureError, match=missing):
        Verifier([HMAC_KEY], clock=fixed_clock(NOW)).verify_signature(b"x", headers)


def test_an_overlong_webhook_id_is_refused() -> None:
    msg_id = "evt_" + "x" * 252  # 256 characters
    headers = sign(b"x", msg_id=msg_id, keys=[HMAC_KEY], timestamp=NOW)
    with pytest.raises(SignatureError, match="too long"):
        Verifier([HMAC_KEY], clock=fixed_clock(NOW)).verify_signature(b"x", headers)


def test_a_surrogate_in_the_webhook_id_is_a_signature_error() -> None:
    headers = headers_for("evt_\udc80", NOW, "v1," + b64(bytes(32)))
    with pytest.raises(SignatureError):
        Verifier([HMAC_KEY], clock=fixed_clock(NOW)).verify_signature(b"x", headers)


# Header names in any letter case ---------------------------------------------------------------


def _any_case(name: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in name)).map("".join)


@no_deadline
@given(
    id_name=_any_case("webhook-id"),
    ts_name=_any_case("webhook-timestamp"),
    sig_name=_any_case("webhook-signature"),
)
def test_header_names_in_any_letter_case(id_name: str, ts_name: str, sig_name: str) -> None:
    signed = sign(b"{}", msg_id="evt_1", keys=[ED_KEY.secret], timestamp=NOW)
    headers = {
        id_name: signed["webhook-id"],
        ts_name: signed["webhook-timestamp"],
        sig_name: signed["webhook-signature"],
    }
    message = Verifier([ED_KEY.public], clock=fixed_clock(NOW)).verify_signature(b"{}", headers)
    assert message == SignedMessage("evt_1", NOW)


def test_httpx_headers_are_accepted() -> None:
    signed = sign(b"{}", msg_id="evt_1", keys=[HMAC_KEY], timestamp=NOW)
    headers = httpx.Headers({name.upper(): value for name, value in signed.items()})
    message = Verifier([HMAC_KEY], clock=fixed_clock(NOW)).verify_signature(b"{}", headers)
    assert message.id == "evt_1"


# Properties -------------------------------------------------------------------------------------

msg_ids = st.text(min_size=1, max_size=255)
timestamps = st.integers(min_value=0, max_value=10**12 - 1)
key_pairs = st.sampled_from(KEY_PAIRS)
# Every code point, lone surrogates included (and drawn often): headers may come from anywhere.
any_text = st.text(
    st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"])),
    max_size=120,
)
signature_entries = st.tuples(
    st.sampled_from(["v1", "v1a", "v2", "", "V1"]),
    st.one_of(st.binary(max_size=70).map(b64), any_text),
).map(",".join)
garbage_signatures = st.one_of(any_text, st.lists(signature_entries, max_size=20).map(" ".join))
garbage_timestamps = st.one_of(any_text, st.integers().map(str), st.floats().map(str))


@no_deadline
@given(body=st.binary(max_size=4096), msg_id=msg_ids, timestamp=timestamps, keys=key_pairs)
def test_sign_then_verify_round_trips(
    body: bytes, msg_id: str, timestamp: int, keys: tuple[str, str]
) -> None:
    signing_key, verifying_key = keys
    headers = sign(body, msg_id=msg_id, keys=[signing_key], timestamp=timestamp)
    verifier = Verifier([verifying_key], clock=fixed_clock(timestamp))
    assert verifier.verify_signature(body, headers) == SignedMessage(msg_id, timestamp)


@no_deadline
@given(body=st.binary(min_size=1, max_size=2048), data=st.data(), keys=key_pairs)
def test_any_single_byte_change_to_the_body_is_refused(
    body: bytes, data: st.DataObject, keys: tuple[str, str]
) -> None:
    signing_key, verifying_key = keys
    headers = sign(body, msg_id="evt_1", keys=[signing_key], timestamp=NOW)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    new_byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    changed = body[:index] + bytes([new_byte]) + body[index + 1 :]
    with pytest.raises(SignatureError):
        Verifier([verifying_key], clock=fixed_clock(NOW)).verify_signature(changed, headers)


@no_deadline
@given(
    header=st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
    data=st.data(),
    keys=key_pairs,
)
def test_garbage_in_any_header_is_only_ever_a_signature_error(
    header: str, data: st.DataObject, keys: tuple[str, str]
) -> None:
    signing_key, verifying_key = keys
    headers = sign(b'{"a": 1}', msg_id="evt_1", keys=[signing_key], timestamp=NOW)
    strategy = {
        "webhook-id": any_text,
        "webhook-timestamp": garbage_timestamps,
        "webhook-signature": garbage_signatures,
    }[header]
    garbage = data.draw(strategy, label=header)
    assume(garbage != headers[header])
    headers[header] = garbage
    with pytest.raises(SignatureError):
        Verifier([verifying_key], clock=fixed_clock(NOW)).verify_signature(b'{"a": 1}', headers)


# Verifier.verify: the body must be a signoff CallbackEvent signed under its own id ------------


def test_verify_parses_a_callback_event(make_event_body: Callable[..., bytes]) -> None:
    body = make_event_body("evt_42")
    headers = sign(body, msg_id="evt_42", keys=[ED_KEY.secret], timestamp=NOW)
    event = Verifier([ED_KEY.public], clock=fixed_clock(NOW)).verify(body, headers)
    assert event.id == "evt_42"
    assert event.type == "request.decided"
    assert event.data.request.id == "req_01JD3Z5X8K4V7N2M5P9R1T3W6Y"
    assert event.data.request.correlation == {"thread_id": "th_1", "interrupt_id": "int_9"}


@pytest.mark.parametrize(
    "body",
    [b'{"hello": "world"}', b"not json", b"\xff\xfe", b"[" * 5000, b""],
    ids=["other-json", "not-json", "not-utf8", "deeply-nested", "empty"],
)
def test_verify_refuses_a_validly_signed_non_event_body(body: bytes) -> None:
    headers = sign(body, msg_id="evt_42", keys=[HMAC_KEY], timestamp=NOW)
    verifier = Verifier([HMAC_KEY], clock=fixed_clock(NOW))
    assert verifier.verify_signature(body, headers).id == "evt_42"  # the signature is fine
    with pytest.raises(SignatureError, match="not a signoff callback event"):
        verifier.verify(body, headers)


def test_verify_refuses_an_event_signed_under_another_id(
    make_event_body: Callable[..., bytes],
) -> None:
    body = make_event_body("evt_42")
    headers = sign(body, msg_id="evt_43", keys=[ED_KEY.secret], timestamp=NOW)
    with pytest.raises(SignatureError, match="does not match the webhook-id"):
        Verifier([ED_KEY.public], clock=fixed_clock(NOW)).verify(body, headers)


def test_verify_refuses_a_forged_event(make_event_body: Callable[..., bytes]) -> None:
    body = make_event_body("evt_42")
    forged = sign(body, msg_id="evt_42", keys=[generate_signing_key().secret], timestamp=NOW)
    with pytest.raises(SignatureError, match="no signature matches"):
        Verifier([ED_KEY.public], clock=fixed_clock(NOW)).verify(body, forged)
