"""Evidence packets: one request's history, provable without the rest of the log.

A packet holds the request (with its decisions and outcome), the policy and config version that
routed it, who was on shift at routing, every decision with the person who made it, the
callback attempts, and every audit event of the request as its canonical entry with an RFC 6962
inclusion proof against one signed checkpoint. `signoff.audit.verify_evidence` (or
`signoff audit verify-evidence FILE`) checks it with nothing but the log's public key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from signoff.audit import EVIDENCE_FORMAT, Checkpoint, VerifierKey
from signoff.merkle import leaf_hash, verify_inclusion
from signoff.models import Request
from signoff_server import audit
from signoff_server.checkpoints import CheckpointRecord
from signoff_server.schema import audit_events

__all__ = ["build_packet", "last_seq"]


def last_seq(conn: Connection, request_id: str) -> int | None:
    """The newest audit seq of a request (None if it has no events)."""
    row = conn.execute(
        select(audit_events.c.seq)
        .where(audit_events.c.request_id == request_id)
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    return None if row is None else int(row.seq)


def build_packet(
    conn: Connection,
    request: Request,
    checkpoint: CheckpointRecord,
    verifier: VerifierKey,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The evidence packet of `request`, proven against `checkpoint`."""
    rows = list(
        conn.execute(
            select(audit_events)
            .where(audit_events.c.request_id == request.id)
            .order_by(audit_events.c.seq)
        )
    )
    covered = [r for r in rows if r.seq < checkpoint.size]
    proofs = audit.inclusion_proofs(conn, [r.seq for r in covered], checkpoint.size)
    signed = Checkpoint.open(checkpoint.note, [verifier])
    events: list[dict[str, Any]] = []
    parsed: list[dict[str, Any]] = []
    for row in covered:
        entry = str(row.entry)
        leaf = leaf_hash(entry.encode())
        proof = proofs[row.seq]
        if leaf.hex() != row.leaf_hash or not verify_inclusion(
            leaf, row.seq, signed.size, proof, signed.root
        ):
            raise audit.AuditIntegrityError(
                f"audit entry {row.seq} is not provably in the checkpoint of size {signed.size}"
            )
        fields = audit.parse_entry(entry)
        parsed.append(fields)
        events.append(
            {
                "seq": row.seq,
                "leaf_hash": row.leaf_hash,
                "entry": entry,
                "event": fields,
                "inclusion_proof": [p.hex() for p in proof],
            }
        )
    routed = next((e for e in parsed if e["type"] == "request.routed"), None)
    policy = request.policy.model_dump(mode="json") if request.policy else None
    return {
        "format": EVIDENCE_FORMAT,
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "request": request.model_dump(mode="json"),
        "policy": policy,
        "config_version": request.policy.version if request.policy else None,
        "assignees_at_routing": routed["data"].get("assignees") if routed else None,
        "decisions": [d.model_dump(mode="json") for d in request.decisions],
        "callbacks": [
            {k: e[k] for k in ("seq", "at", "type", "actor", "data")}
            for e in parsed
            if str(e["type"]).startswith("callback.")
        ],
        "outcome": request.outcome.model_dump(mode="json") if request.outcome else None,
        "events": events,
        "events_after_checkpoint": len(rows) - len(covered),
        "checkpoint": {
            "origin": signed.origin,
            "size": signed.size,
            "root_hash": signed.root.hex(),
            "note": checkpoint.note,
        },
        "verifier_key": str(verifier),
    }
