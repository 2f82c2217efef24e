"""Prefixed, sortable identifiers: `req_<ulid>`, `dec_<ulid>`, `evt_<ulid>`.

A ULID is 48 bits of millisecond time and 80 random bits in Crockford base32, so ids sort by
creation time as plain strings.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """A new id such as `req_01JD3Z...`: `prefix`, an underscore, and a 26-character ULID."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return f"{prefix}_{''.join(chars)}"
