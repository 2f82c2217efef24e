"""HTTP routes of the audit log: checkpoint, entries, and one request's evidence packet.

* `GET /v1/audit/checkpoint`: the newest signed checkpoint (any authenticated caller: it
  discloses only the log's size and root). `Accept: text/plain` gives the signed note alone.
* `GET /v1/audit/entries?from=&to=`: canonical entries for offline verification (auditors:
  the `auditor` role, or admin).
* `GET /v1/requests/{id}/evidence`: the request's evidence packet (reviewers who can see the
  request, auditors, admins, and the request's own agent).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from signoff_server import audit, checkpoints, evidence
from signoff_server.checkpoints import Checkpointer, CheckpointRecord
from signoff_server.db import Database
from signoff_server.errors import Forbidden, Invalid, NotFound, ServiceError
from signoff_server.identity import Principal
from signoff_server.views import load_request

__all__ = ["AuditCheckpoint", "AuditEntries", "AuditEntry", "audit_router"]

MAX_ENTRIES = 1000


class Unavailable(ServiceError):
    """The audit log cannot be signed right now."""

    status_code = 503
    default_code = "audit_unavailable"


class AuditCheckpoint(BaseModel):
    """A signed checkpoint of the audit log (C2SP tlog-checkpoint in a signed note)."""

    origin: str = Field(description="The log's name; also the signing key's name.")
    size: int = Field(description="Entries the checkpoint covers (seq 0 .. size-1).")
    root_hash: str = Field(description="RFC 6962 root hash of those entries, hex.")
    note: str = Field(description="The signed note, byte for byte as signed.")
    verifier_key: str = Field(description="The key that checks `note` (`<name>+<id>+<key>`).")
    created_at: datetime


class AuditEntry(BaseModel):
    """One log entry: its canonical JSON (RFC 8785), exactly the bytes its leaf hash covers."""

    seq: int
    leaf_hash: str = Field(description="SHA-256(0x00 || entry), hex.")
    entry: str


class AuditEntries(BaseModel):
    """A page of entries, `from` <= seq < `to`."""

    size: int = Field(description="The log's size now.")
    entries: list[AuditEntry]
    next: int | None = Field(description="`from` of the next page; null at the end.")


def _checkpoint_body(record: CheckpointRecord, checkpointer: Checkpointer) -> AuditCheckpoint:
    return AuditCheckpoint(
        origin=checkpointer.origin,
        size=record.size,
        root_hash=record.root_hash,
        note=record.note,
        verifier_key=str(checkpointer.verifier),
        created_at=record.created_at,
    )


def audit_router(
    db: Database,
    checkpointer: Callable[[], Checkpointer | None],
    principal: Callable[..., Awaitable[Principal]],
    responses: dict[int | str, dict[str, Any]],
) -> APIRouter:
    """The audit routes; `checkpointer()` is None until the app has loaded its signing key."""
    router = APIRouter()
    caller_dep = Depends(principal)

    def signer() -> Checkpointer:
        found = checkpointer()
        if found is None:
            raise Unavailable("the audit log's signing key is not loaded yet")
        return found

    @router.get(
        "/v1/audit/checkpoint",
        tags=["audit"],
        responses={**responses, 200: {"content": {"text/plain": {}}}},
    )
    def get_checkpoint(request: Request, caller: Principal = caller_dep) -> Any:
        """The newest signed checkpoint (signed within `audit_checkpoint_seconds` of the last
        append). With `Accept: text/plain`, the signed note alone."""
        cp = signer()
        with db.read() as conn:
            record = checkpoints.latest(conn)
        if record is None:
            record = cp.ensure(1)
        if record is None:
            raise NotFound("the audit log is empty: there is no checkpoint yet")
        accept = request.headers.get("accept", "")
        if "text/plain" in accept and "application/json" not in accept:
            return Response(record.note, media_type="text/plain; charset=utf-8")
        return _checkpoint_body(record, cp)

    @router.get("/v1/audit/entries", tags=["audit"], responses=responses)
    def get_entries(
        caller: Principal = caller_dep,
        start: int = Query(0, alias="from", ge=0, description="First seq (inclusive)."),
        end: int | None = Query(
            None, alias="to", ge=0, description=f"Last seq (exclusive); at most {MAX_ENTRIES} on."
        ),
    ) -> AuditEntries:
        """Canonical entries `from` <= seq < `to` for offline verification (auditors, admins)."""
        if not audit.is_auditor(caller):
            raise Forbidden("reading the audit log needs the auditor or admin role")
        if end is not None and end < start:
            raise Invalid("`to` must not be below `from`", field="to")
        stop = start + MAX_ENTRIES if end is None else min(end, start + MAX_ENTRIES)
        with db.read() as conn:
            size = audit.log_size(conn)
            stop = min(stop, size)
            rows = audit.entries(conn, start, stop) if start < stop else []
        wanted_end = size if end is None else min(end, size)
        return AuditEntries(
            size=size,
            entries=[AuditEntry(seq=s, leaf_hash=h, entry=e) for s, e, h in rows],
            next=stop if stop < wanted_end else None,
        )

    @router.get("/v1/requests/{request_id}/evidence", tags=["requests"], responses=responses)
    async def get_evidence(request_id: str, caller: Principal = caller_dep) -> dict[str, Any]:
        """The request's evidence packet: the request, matched policy and config version, who
        was on shift, every decision and its signer, callback attempts, the outcome, and each
        audit event with its inclusion proof against a signed checkpoint. Check it offline with
        `signoff audit verify-evidence`."""
        cp = signer()
        viewer = None if audit.is_auditor(caller) else caller

        def newest() -> int | None:
            with db.read() as conn:
                load_request(conn, viewer, request_id)
                return evidence.last_seq(conn, request_id)

        last = await run_in_threadpool(newest)
        record = await run_in_threadpool(cp.ensure, 0 if last is None else last + 1)
        if record is None:
            raise NotFound(f"{request_id} has no audit events")

        def build() -> dict[str, Any]:
            with db.read() as conn:
                _, found = load_request(conn, viewer, request_id)
                return evidence.build_packet(conn, found, record, cp.verifier)

        return await run_in_threadpool(build)

    return router
