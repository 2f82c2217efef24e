"""Interoperability of our `v1` (HMAC) signatures with the reference `standardwebhooks` package.

That package verifies `v1` only (it skips `v1a`) and checks timestamps against the real clock, so
these tests sign with the current time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from signoff import SignatureError, Verifier
from signoff.webhooks import SignedMessage, generate_hmac_secret, generate_signing_key, sign

SPEC_WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET = generate_hmac_secret()

# The reference package decodes the body as UTF-8 text and splits the header on "," and " ".
bodies = st.text(max_size=2048)
msg_ids = st.text(
    st.characters(codec="ascii", exclude_characters=" ,", exclude_categories=("Cc",)),
    min_size=1,
    max_size=64,
)

# Each example takes microseconds; a loaded CI machine must not make it a flaky DeadlineExceeded.
no_deadline = settings(deadline=None)


def test_reference_package_reproduces_the_spec_v1_signature() -> None:
    when = datetime.fromtimestamp(1614265330, tz=UTC)
    assert (
        Webhook(SPEC_WHSEC).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", when, '{"test": 2432232314}')
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@no_deadline
@given(body=bodies, msg_id=msg_ids)
def test_our_v1_signature_verifies_with_the_reference(body: str, msg_id: str) -> None:
    headers = sign(body.encode(), msg_id=msg_id, keys=[SECRET])
    assert Webhook(SECRET).verify(body.encode(), headers, json_parse=False) is None


@no_deadline
@given(body=bodies, msg_id=msg_ids)
def test_reference_v1_signature_verifies_with_ours(body: str, msg_id: str) -> None:
    timestamp = int(time.time())
    signature = Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    assert Verifier([SECRET]).verify_signature(body.encode(), headers) == SignedMessage(
        msg_id, timestamp
    )


def test_reference_verifies_our_rotation_header_and_skips_v1a() -> None:
    body = b'{"type": "request.decided"}'
    headers = sign(body, msg_id="evt_1", keys=[generate_signing_key().secret, SECRET])
    assert headers["webhook-signature"].startswith("v1a,")
    assert Webhook(SECRET).verify(body, headers) == {"type": "request.decided"}


def test_both_refuse_a_signature_made_with_another_secret() -> None:
    body = b"{}"
    headers = sign(body, msg_id="evt_1", keys=[generate_hmac_secret()])
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)
    with pytest.raises(SignatureError):
        Verifier([SECRET]).verify_signature(body, headers)
