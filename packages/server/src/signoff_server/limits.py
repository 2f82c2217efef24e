"""Request limits, checked before the app sees a request: a pure ASGI middleware.

- **Body size**: a body over `max_body_bytes` is refused with 413 `body_too_large`, from its
  `Content-Length` before a byte of it is read, or as soon as a chunked body passes the limit.
- **JSON nesting**: a JSON body nested deeper than `max_json_depth` arrays/objects is refused
  with 422 `json_too_deep` (a deep body would otherwise exhaust the parser's recursion).
- **Unparsable JSON**: a JSON body that is not UTF-8, or holds a number too long for Python to
  convert (over 4300 digits), is refused with 422 `invalid_json`; syntax errors stay with the
  app (422 `validation_failed`, naming the position).
- **U+0000**: a NUL character in a JSON string (or key), a form field, a query parameter or the
  path is refused with 422 `nul_character` naming where it is. PostgreSQL text cannot hold it,
  and SQLite would store what PostgreSQL refuses: both backends refuse it the same way, here.

Every refusal has the API's error body `{error: {code, message, details}}`, `details` a list of
`{loc, msg, type}` as for validation errors. Bodies are read into memory (the app reads them
whole anyway) and handed on unchanged; requests without a body pass straight through. The
checks cost a few C-speed scans of the body; a full parse only runs when a scan found something
that needs one (a `\\u0000` escape).

`install_limits(app, settings)` adds this middleware and the throttling of failed
authentication (throttle.py) to an app: the one line `create_app` needs.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signoff_server.throttle import install_throttle

if TYPE_CHECKING:
    from signoff_server.settings import Settings

__all__ = [
    "RequestLimits",
    "install_limits",
    "json_too_deep",
]

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_DIGITS = [bytes([d]) for d in b"0123456789"]
_LONG_NUMBER = re.compile(rb"(?<![0-9])[0-9]{4301}")  # int() refuses more than 4300 digits;
# the look-behind starts a match only where a run of digits starts, so the scan stays linear.


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, loc: list[str], kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.loc = loc
        self.kind = kind

    def body(self) -> bytes:
        detail = {"loc": self.loc, "msg": self.message, "type": self.kind}
        error = {"code": self.code, "message": self.message, "details": [detail]}
        return json.dumps({"error": error}).encode()


def _outside_strings(body: bytes) -> bytes:
    """The JSON text with every string removed, so brackets and digits in strings do not count.

    Escaped backslashes go first, then escaped quotes; every quote left opens or closes a
    string. Linear in the body (no regular expression that could backtrack).
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(unescaped.split(b'"')[0::2])


def json_too_deep(body: bytes, limit: int) -> bool:
    """True if the JSON text nests arrays and objects more than `limit` deep.

    Brackets inside strings do not count. Costs two byte counts unless the body holds more
    than `limit` opening brackets.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _outside_strings(body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def _nul_path(value: Any, path: list[str]) -> list[str] | None:
    """Where the first U+0000 in a parsed JSON value is (keys count), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in cast("dict[str, Any]", value).items():
            if "\x00" in key:
                return [*path, key.replace("\x00", "\\x00")]
            found = _nul_path(item, [*path, key])
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(cast("list[Any]", value)):
            found = _nul_path(item, [*path, str(index)])
            if found is not None:
                return found
    return None


def _nul(loc: list[str]) -> _Refusal:
    where = ".".join(loc[1:] if len(loc) > 1 else loc)
    return _Refusal(
        422,
        "nul_character",
        f"{where}: must not contain the NUL character (U+0000)",
        loc,
        "nul_character",
    )


def _media_type(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return None


def _is_json(media: str | None) -> bool:
    # As FastAPI: no content type, or application/json, or application/*+json.
    return (
        media is None
        or media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    )


def _check_url(scope: Scope) -> None:
    if "\x00" in scope.get("path", ""):
        raise _nul(["path"])
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                raise _nul(["query", name.replace("\x00", "\\x00")])


def _check_json(body: bytes, max_depth: int) -> None:
    if json_too_deep(body, max_depth):
        raise _Refusal(
            422,
            "json_too_deep",
            f"body: JSON nested deeper than {max_depth} levels",
            ["body"],
            "json_too_deep",
        )
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refusal(
                422, "invalid_json", "body: JSON must be UTF-8", ["body"], "json_invalid"
            ) from None
    if (
        len(body) > 4300
        and sum(map(body.count, _DIGITS)) > 4300  # C-speed counts before a regex scan
        and _LONG_NUMBER.search(body)
        and _LONG_NUMBER.search(_outside_strings(body))
    ):
        raise _Refusal(
            422,
            "invalid_json",
            "body: a number has more than 4300 digits",
            ["body"],
            "json_invalid",
        )
    if b"\\u0000" in body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return  # the app answers a syntax error itself, naming the position
        found = _nul_path(parsed, ["body"])
        if found is not None:
            raise _nul(found)


def _check_form(body: bytes) -> None:
    if b"%00" in body or b"\x00" in body:
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                raise _nul(["body", name.replace("\x00", "\\x00")])


class RequestLimits:
    """ASGI middleware enforcing the limits above on every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
    ) -> None:
        if max_body_bytes < 1 or max_json_depth < 1:
            raise ValueError("request limits must be positive")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_url(scope)
            if not self._has_body(scope):
                await self.app(scope, receive, send)
                return
            body = await self._read(receive)
            if body is None:
                return  # the client went away before its body arrived: nobody to answer
            media = _media_type(scope)
            if _is_json(media):
                _check_json(body, self.max_json_depth)
            elif media == "application/x-www-form-urlencoded":
                _check_form(body)
        except _Refusal as refusal:
            await self._refuse(send, refusal)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # e.g. http.disconnect, for streaming answers

        await self.app(scope, replay, send)

    def _has_body(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return True  # malformed: read what comes, within the limit
                if length > self.max_body_bytes:
                    raise self._too_large()
                return length > 0
            if name == b"transfer-encoding":
                return True
        return False

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> _Refusal:
        return _Refusal(
            413,
            "body_too_large",
            f"body: larger than the limit of {self.max_body_bytes} bytes",
            ["body"],
            "body_too_large",
        )

    @staticmethod
    async def _refuse(send: Send, refusal: _Refusal) -> None:
        body = refusal.body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if refusal.status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install_limits(app: FastAPI, settings: Settings) -> None:
    """The request limits and the throttling of failed authentication (throttle.py) for `app`,
    as `settings` configure them."""
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    install_throttle(app, settings.auth_failure_limit, settings.auth_failure_window)
