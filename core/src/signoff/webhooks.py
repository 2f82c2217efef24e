"""Standard Webhooks signing and verification for signoff's decision callbacks.

Signed content is `{webhook-id}.{webhook-timestamp}.{body}`. Two schemes:

- `v1a` (default): Ed25519. The server signs with `whsk_` keys; receivers pin the public `whpk_`
  keys, so a receiver can verify but never forge. `whsk_` keys come as a 32-byte seed or as the
  64-byte seed + public key; both are accepted.
- `v1`: HMAC-SHA256 with a shared `whsec_` secret.

During key rotation the header carries several space-separated signatures; one that matches a
known key is enough. Every verification failure raises `SignatureError` and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from signoff.errors import SignatureError
from signoff.models import CallbackEvent

__all__ = [
    "DEFAULT_TOLERANCE",
    "KeyPair",
    "SignedMessage",
    "Signer",
    "Verifier",
    "generate_hmac_secret",
    "generate_signing_key",
    "public_key_for",
    "sign",
]

DEFAULT_TOLERANCE = timedelta(seconds=300)
"""How far a `webhook-timestamp` may lie from the receiver's clock, in either direction."""

_MAX_SIGNATURES = 16
_MAX_ID_LENGTH = 255


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 signing key (`whsk_…`, keep secret) and its public key (`whpk_…`, publish)."""

    secret: str
    public: str


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """What a verified signature vouches for: the message id and its timestamp."""

    id: str
    timestamp: int


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ed25519_private(secret: str) -> Ed25519PrivateKey:
    raw = _b64decode(secret.removeprefix("whsk_"), "whsk_ key")
    if len(raw) not in (32, 64):
        raise ValueError(f"a whsk_ key holds 32 or 64 bytes, not {len(raw)}")
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and key.public_key().public_bytes_raw() != raw[32:]:
        raise ValueError("this 64-byte whsk_ key's public half does not belong to its seed")
    return key


def _hmac_secret(secret: str) -> bytes:
    raw = _b64decode(secret.removeprefix("whsec_"), "whsec_ secret")
    if not raw:
        # An empty HMAC key would let anyone compute valid signatures: fail closed.
        raise ValueError("a whsec_ secret must not be empty")
    return raw


def generate_signing_key() -> KeyPair:
    """A new Ed25519 key pair for `v1a` signatures."""
    key = Ed25519PrivateKey.generate()
    return KeyPair(
        secret="whsk_" + _b64(key.private_bytes_raw()),
        public="whpk_" + _b64(key.public_key().public_bytes_raw()),
    )


def generate_hmac_secret() -> str:
    """A new 32-byte `whsec_` secret for `v1` (HMAC-SHA256) signatures."""
    return "whsec_" + _b64(os.urandom(32))


def public_key_for(secret: str) -> str:
    """The `whpk_` public key of a `whsk_` signing key."""
    return "whpk_" + _b64(_ed25519_private(secret).public_key().public_bytes_raw())


class Signer:
    """Signs message bodies with one or more keys (`whsk_…` for v1a, `whsec_…` for v1).

    Keys are parsed once, so a Signer is cheap to reuse for many messages.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one whsk_ or whsec_ key")
        self._ed25519: list[Ed25519PrivateKey] = []
        self._hmac: list[bytes] = []
        for key in keys:
            if key.startswith("whsk_"):
                self._ed25519.append(_ed25519_private(key))
            elif key.startswith("whsec_"):
                self._hmac.append(_hmac_secret(key))
            else:
                raise ValueError("signing keys start with 'whsk_' (Ed25519) or 'whsec_' (HMAC)")

    def signature_header(self, body: bytes, *, msg_id: str, timestamp: int) -> str:
        """The `webhook-signature` header value: every key's signature, space-separated."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        parts = [f"v1a,{_b64(key.sign(content))}" for key in self._ed25519]
        parts += [
            f"v1,{_b64(hmac.new(secret, content, hashlib.sha256).digest())}"
            for secret in self._hmac
        ]
        return " ".join(parts)

    def headers(self, body: bytes, *, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers for `body`; the timestamp defaults to now."""
        ts = int(time.time()) if timestamp is None else timestamp
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": self.signature_header(body, msg_id=msg_id, timestamp=ts),
        }


def sign(
    body: bytes, *, msg_id: str, keys: Sequence[str], timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed with every key in `keys`."""
    return Signer(keys).headers(body, msg_id=msg_id, timestamp=timestamp)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; HTTP header names are not.
        for key, item in headers.items():
            if key.lower() == name:
                return item
        raise SignatureError(f"missing {name} header")
    return value


class Verifier:
    """Verifies signed callbacks against pinned keys (`whpk_…`, `whsk_…` or `whsec_…`).

    `tolerance` bounds how far the timestamp may lie from now, in the past or the future;
    `clock` returns unix seconds and is the seam for tests.
    """

    def __init__(
        self,
        keys: Iterable[str],
        *,
        tolerance: timedelta | float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ed25519: list[Ed25519PublicKey] = []
        self._hmac: list[hmac.HMAC] = []
        for key in keys:
            if key.startswith("whpk_"):
                raw = _b64decode(key.removeprefix("whpk_"), "whpk_ key")
                if len(raw) != 32:
                    raise ValueError(f"a whpk_ key holds 32 bytes, not {len(raw)}")
                self._ed25519.append(Ed25519PublicKey.from_public_bytes(raw))
            elif key.startswith("whsk_"):
                self._ed25519.append(_ed25519_private(key).public_key())
            elif key.startswith("whsec_"):
                self._hmac.append(hmac.new(_hmac_secret(key), digestmod=hashlib.sha256))
            else:
                raise ValueError("verification keys start with 'whpk_', 'whsk_' or 'whsec_'")
        if not self._ed25519 and not self._hmac:
            raise ValueError("a Verifier needs at least one key")
        seconds = tolerance.total_seconds() if isinstance(tolerance, timedelta) else tolerance
        self._tolerance = float(seconds)
        self._clock = clock

    def verify_signature(self, body: bytes, headers: Mapping[str, str]) -> SignedMessage:
        """Check the headers' signature over `body`; return the message id and timestamp."""
        msg_id = _header(headers, "webhook-id")
        ts_text = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        if not msg_id or len(msg_id) > _MAX_ID_LENGTH:
            raise SignatureError("webhook-id is empty or too long")
        if not (ts_text.isascii() and ts_text.isdigit()) or len(ts_text) > 12:
            raise SignatureError("webhook-timestamp is not a unix time in seconds")
        timestamp = int(ts_text)
        drift = self._clock() - timestamp
        if drift > self._tolerance:
            raise SignatureError("webhook-timestamp is too old (outside the tolerance)")
        if drift < -self._tolerance:
            raise SignatureError("webhook-timestamp is in the future (outside the tolerance)")
        entries = signatures.split()
        if not entries or len(entries) > _MAX_SIGNATURES:
            raise SignatureError("webhook-signature holds no signatures, or too many")
        try:
            content = f"{msg_id}.{ts_text}.".encode() + body
        except UnicodeEncodeError:  # lone surrogates: no HTTP header carries them
            raise SignatureError("webhook-id is not encodable text") from None
        for entry in entries:
            scheme, _, encoded = entry.partition(",")
            if scheme not in ("v1", "v1a"):
                continue
            try:
                signature = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            if scheme == "v1a" and self._matches_ed25519(signature, content):
                return SignedMessage(id=msg_id, timestamp=timestamp)
            if scheme == "v1" and self._matches_hmac(signature, content):
                return SignedMessage(id=msg_id, timestamp=timestamp)
        raise SignatureError("no signature matches a known key")

    def verify(self, body: bytes, headers: Mapping[str, str]) -> CallbackEvent:
        """Verify the signature, then parse the body as a signoff `CallbackEvent`.

        The event's `id` must equal the `webhook-id` header it was signed under.
        """
        message = self.verify_signature(body, headers)
        try:
            event = CallbackEvent.model_validate_json(body)
        except ValidationError as exc:
            raise SignatureError("the signed body is not a signoff callback event") from exc
        if event.id != message.id:
            raise SignatureError("the event id does not match the webhook-id header")
        return event

    def _matches_ed25519(self, signature: bytes, content: bytes) -> bool:
        if len(signature) != 64:
            return False
        for key in self._ed25519:
            try:
                key.verify(signature, content)
            except InvalidSignature:
                continue
            return True
        return False

    def _matches_hmac(self, signature: bytes, content: bytes) -> bool:
        for template in self._hmac:
            mac = template.copy()
            mac.update(content)
            if hmac.compare_digest(mac.digest(), signature):
                return True
        return False
