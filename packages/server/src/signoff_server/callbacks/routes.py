"""`GET /v1/keys`: the public keys receivers pin to verify callbacks. Public, no auth."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from signoff_server.callbacks.keys import KeyRing

__all__ = ["PublicKeys", "WebhookKey", "keys_router"]


class WebhookKey(BaseModel):
    """One Ed25519 public key that signs callbacks (`v1a`), with its validity."""

    id: str = Field(description="The key's id (`whk_…`).")
    scheme: Literal["v1a"] = Field(default="v1a", description="The Standard Webhooks scheme.")
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str = Field(description="`whpk_…`: pin it in your receiver's Verifier.")
    valid_from: datetime
    valid_until: datetime | None = Field(
        description="When the key stops signing (set during a rotation's overlap); null: "
        "until a rotation."
    )


class PublicKeys(BaseModel):
    """The keys a receiver needs to verify signoff's callbacks. Never holds a secret."""

    webhook_keys: list[WebhookKey]
    audit_key: str | None = Field(
        default=None,
        description="The audit log's verifier key (C2SP signed-note `<name>+<id>+<key>`): "
        "checks its signed checkpoints and evidence packets.",
    )


def keys_router(
    keyring: KeyRing,
    clock: Callable[[], datetime],
    audit_key: Callable[[], str | None] | None = None,
) -> APIRouter:
    """The router for `GET /v1/keys`."""
    router = APIRouter(tags=["keys"])

    @router.get("/v1/keys")
    async def public_keys(response: Response) -> PublicKeys:  # pyright: ignore[reportUnusedFunction]
        """Webhook verification public keys (`whpk_…`): every key that currently signs, with
        its id and validity. During a rotation's overlap there are two; pin both. Also the
        audit log's verifier key."""
        now = clock()
        keys = await run_in_threadpool(keyring.signing_keys, now)
        response.headers["cache-control"] = "public, max-age=60"
        return PublicKeys(
            webhook_keys=[
                WebhookKey(
                    id=k.id,
                    public_key=k.public,
                    valid_from=k.created_at,
                    valid_until=k.retires_at,
                )
                for k in keys
            ],
            audit_key=audit_key() if audit_key else None,
        )

    return router
