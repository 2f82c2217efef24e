"""Signed decision callbacks (Standard Webhooks): outbox, delivery, signing keys, URL checks.

- `outbox`: the outbox row written in the transaction that closes a request.
- `delivery`: the worker that signs and POSTs, retries on a schedule, records every attempt.
- `keys`: the Ed25519 key file (`whsk_`/`whpk_`, rotation) and per-agent HMAC secrets (`whsec_`).
- `targets`: callback URL checks (http(s) only, optional allow-list, no redirects).
- `routes`: `GET /v1/keys`; `cli`: `signoff webhook-keys …` and `signoff webhooks …`.
- `service`: `Callbacks`, which the app builds from its settings.

See docs/callbacks.md for the receiver's side.
"""

from signoff_server.callbacks.delivery import CallbackDelivery, RetrySchedule
from signoff_server.callbacks.keys import KeyRing, SigningKey, webhook_secrets
from signoff_server.callbacks.outbox import DELIVER_TIMER, DeliveryState, callback_outbox
from signoff_server.callbacks.service import Callbacks, key_path
from signoff_server.callbacks.targets import CallbackTargets

__all__ = [
    "DELIVER_TIMER",
    "CallbackDelivery",
    "CallbackTargets",
    "Callbacks",
    "DeliveryState",
    "KeyRing",
    "RetrySchedule",
    "SigningKey",
    "callback_outbox",
    "key_path",
    "webhook_secrets",
]
