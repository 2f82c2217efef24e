"""Redacting secrets from a tool call before it leaves the machine.

`redact(value)` walks a JSON value and replaces what looks like a credential with `[REDACTED]`:
values under secret-sounding keys (`password`, `token`, `api_key`, ...), and, inside strings,
common token formats (cloud keys, GitHub/Slack/Stripe/OpenAI/Anthropic tokens, JWTs, private key
blocks, bearer headers, `NAME=value` assignments of secret-sounding names, passwords in URLs).
It is deterministic: the same input always gives the same output, so idempotency keys and
request bodies stay stable across re-runs of the hook.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"

_SECRET_NAME = (
    r"(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"  # noqa: S105
    r"|client[_-]?secret|authorization|credentials?)"
)

_KEY_NAME = re.compile(rf"(?i)^[\w.-]*{_SECRET_NAME}[\w.-]*$")

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, whole block.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        REDACTED,
    ),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@"), rf"\1:{REDACTED}@"),
    # NAME=value / NAME: value for secret-sounding names (env exports, flags, config lines).
    (
        re.compile(rf"(?i)\b([\w.-]*{_SECRET_NAME}[\w.-]*)(\s*[=:]\s*)(['\"]?)[^\s'\"]{{4,}}\3"),
        rf"\1\2\3{REDACTED}\3",
    ),
    # --password value / --token=value.
    (re.compile(rf"(?i)(--?{_SECRET_NAME}[\w-]*)(=|\s+)[^\s]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),  # AWS access key id
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), REDACTED),  # GitHub tokens
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}\b"), REDACTED),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), REDACTED),  # GitLab
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), REDACTED),  # Slack
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"), REDACTED),  # Stripe
    (re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}\b"), REDACTED),  # OpenAI / Anthropic
    (re.compile(r"\b(?:sk|pt)_[A-Za-z0-9]{20,}\b"), REDACTED),  # signoff keys and tokens
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), REDACTED),  # Google API key
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
]


def _redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """`value` (any JSON value) with secrets replaced by `[REDACTED]`."""
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
            name = str(key)  # pyright: ignore[reportUnknownArgumentType]
            if _KEY_NAME.match(name) and isinstance(item, str | int | float) and item != "":
                out[name] = REDACTED
            else:
                out[name] = redact(item)
        return out
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]  # pyright: ignore[reportUnknownVariableType]
    return value
