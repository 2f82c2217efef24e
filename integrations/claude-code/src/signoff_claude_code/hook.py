"""`signoff-claude-hook`: Claude Code's PreToolUse command, failing closed.

Claude Code runs it for each matched tool call with the event as JSON on stdin and reads the
answer from stdout::

    {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                            "permissionDecision": "allow" | "deny" | "defer",
                            "permissionDecisionReason": "..."}}

A call on the local allow-list is allowed at once, without a request. Any other call becomes a
signoff request for the action `claude_code.<Tool>` with the (redacted) `tool_input` as its
arguments, idempotent on session id + tool use id, and the hook waits for the decision:

- approve → `allow`; edit → `allow` with `updatedInput` (or `deny` naming the edit, when the
  input had secrets redacted and the edited input could not be trusted);
- reject / respond / expiry / cancellation → `deny`, the reviewer's comment as the reason;
- headless mode (`claude -p`) → `defer` while pending; `claude -p --resume` re-runs the hook,
  which finds the decision under the same key;
- any error (bad input, signoff down, timeout, SIGINT/SIGTERM) → an explicit `deny`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, Literal, cast

import signoff
from signoff import AgentRef, Client, Request, RequestCreate, Route, Status, Verdict
from signoff_claude_code.config import HookConfig, is_allowed, load_config
from signoff_claude_code.redact import REDACTED, redact

__all__ = ["Answer", "answer_for", "build_request", "decide", "main", "output"]

FRAMEWORK = "claude-code"
Answer = tuple[Literal["allow", "deny", "defer", "ask"], str, dict[str, Any] | None]
"""(permission decision, reason shown to the model, updated tool input or None)."""

_MAX_STDIN = 8 * 1024 * 1024


def output(decision: str, reason: str, updated_input: Mapping[str, Any] | None = None) -> str:
    """The JSON line Claude Code reads from a PreToolUse hook's stdout."""
    specific: dict[str, Any] = {
        "hookEventName": "PreToolUse",
        "permissionDecision": decision,
        "permissionDecisionReason": reason,
    }
    if updated_input is not None:
        specific["updatedInput"] = dict(updated_input)
    return json.dumps({"hookSpecificOutput": specific})


def _summary(tool_name: str, tool_input: Mapping[str, Any]) -> str:
    for name in ("command", "file_path", "url", "path", "pattern"):
        value = tool_input.get(name)
        if isinstance(value, str):
            return f"Claude Code wants to run {tool_name}: {value}"[:4000]
    return f"Claude Code wants to run {tool_name}"


def build_request(event: Mapping[str, Any], config: HookConfig) -> tuple[RequestCreate, bool]:
    """The request for one hook event, and whether anything was redacted from it.

    A pure function of the event: a re-run (e.g. `claude -p --resume`) builds the same body
    under the same idempotency key and gets the same request back.
    """
    session_id = str(event["session_id"])
    tool_use_id = str(event["tool_use_id"])
    tool_name = str(event["tool_name"])
    raw_input: Any = event.get("tool_input") or {}
    if not isinstance(raw_input, dict):
        raise ValueError("tool_input must be a JSON object")
    tool_input = cast(dict[str, Any], raw_input)
    arguments = cast(dict[str, Any], redact(tool_input))
    redacted = json.dumps(arguments, sort_keys=True) != json.dumps(tool_input, sort_keys=True)
    correlation = {"session_id": session_id, "tool_use_id": tool_use_id, "tool": tool_name}
    if isinstance(event.get("mcp_server"), str):
        correlation["mcp_server"] = str(event["mcp_server"])
    request = RequestCreate(
        action=signoff.Action(name=f"claude_code.{tool_name}", arguments=arguments),
        business_object=signoff.BusinessObject(
            type="claude_code_session", id=session_id, attributes={"cwd": event.get("cwd")}
        ),
        summary=redact(_summary(tool_name, tool_input)),
        agent=AgentRef(framework=FRAMEWORK),
        correlation=correlation,
        risk=config.risk,
        route=Route(role=config.route) if config.route else None,
        idempotency_key=f"claude_code:{session_id}:{tool_use_id}",
    )
    return request, redacted


def _create(client: Client, payload: RequestCreate) -> Request:
    try:
        return client.create_request(payload)
    except signoff.Conflict as exc:
        # Same key, other body (e.g. the configuration changed between a deferral and the
        # resume): use the request made for this key only if it is this very call.
        details: Any = exc.details
        request_id = (
            cast(dict[str, Any], details).get("request_id") if isinstance(details, dict) else None
        )
        if not isinstance(request_id, str):
            raise
        request = client.get_request(request_id)
        if (
            request.correlation.get("tool_use_id") != payload.correlation.get("tool_use_id")
            or request.action != payload.action
        ):
            raise
        return request


def answer_for(request: Request, redacted: bool) -> Answer:
    """Map a request's state onto the hook's answer; only an approval allows."""
    final = request.final_decision
    who = final.decided_by.user if final else "nobody"
    comment = final.comment if final and final.comment else None
    if request.status is Status.APPROVED and final is not None:
        if final.verdict is Verdict.EDIT and final.arguments is not None:
            if redacted and REDACTED in json.dumps(final.arguments):
                return ("deny", f"The reviewer ({who}) edited the call; the edited input still "
                        f"holds redacted values, so it was not run. Edited input: "
                        f"{json.dumps(final.arguments)}", None)  # fmt: skip
            reason = f"Approved by {who} with changes" + (f": {comment}" if comment else ".")
            return ("allow", reason, dict(final.arguments))
        if final.verdict is Verdict.APPROVE:
            return ("allow", f"Approved by {who}" + (f": {comment}" if comment else "."), None)
    if request.status is Status.EXPIRED and final is not None and final.verdict is Verdict.APPROVE:
        return ("allow", "Approved on timeout by policy.", None)
    match request.status:
        case Status.RESPONDED:
            return (
                "deny",
                f"Not run. The reviewer ({who}) answered instead: {comment or ''}",
                None,
            )
        case Status.EXPIRED:
            return ("deny", "Not run: no decision arrived before the deadline.", None)
        case Status.CANCELLED:
            return ("deny", "Not run: the approval request was cancelled.", None)
        case Status.PENDING:
            return ("deny", f"Not run: approval {request.id} is still pending.", None)
        case _:
            return ("deny", f"Rejected by {who}" + (f": {comment}" if comment else "."), None)


def decide(event: Mapping[str, Any], config: HookConfig, client: Client | None = None) -> Answer:
    """The answer to one PreToolUse event. Raises on errors; `main` turns those into deny."""
    tool_name = event.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name:
        raise ValueError("the event has no tool_name")
    tool_input: Any = event.get("tool_input") or {}
    if isinstance(tool_input, dict) and is_allowed(
        tool_name, cast(dict[str, Any], tool_input), config.allow
    ):
        return ("allow", f"{tool_name} is on signoff's local allow-list.", None)
    if not config.url:
        raise ValueError("signoff is not configured: set SIGNOFF_URL and SIGNOFF_API_KEY")
    payload, redacted = build_request(event, config)
    own = client is None
    client = client or Client(base_url=config.url, api_key=config.api_key or "")
    try:
        request = _create(client, payload)
        if request.status is Status.PENDING:
            wait = config.headless_wait_seconds if config.headless else config.wait_seconds
            try:
                request = client.wait(request.id, timeout=wait)
            except signoff.TimeoutError:
                if config.headless:
                    return ("defer", f"Waiting for approval in signoff ({request.id}). "
                            "Resume this session once it is decided.", None)  # fmt: skip
                try:
                    request = client.cancel(
                        request.id, reason="the Claude Code hook stopped waiting"
                    )
                except signoff.Conflict:
                    request = client.get_request(request.id)
        return answer_for(request, redacted)
    finally:
        if own:
            client.close()


class _Responder:
    """Writes exactly one answer to stdout, from the main flow or from a signal handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def answer(self, decision: str, reason: str, updated: Mapping[str, Any] | None = None) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
        sys.stdout.write(output(decision, reason, updated) + "\n")
        sys.stdout.flush()
        return True

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.answer("deny", f"Not run: the signoff hook was interrupted ({name}).")
        os._exit(0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signoff-claude-hook", description=__doc__)
    parser.add_argument("--wait", type=float, default=None, help="seconds to wait for a decision")
    parser.add_argument("--headless", action="store_true", help="defer instead of waiting")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: read the event from stdin, answer on stdout; deny on every error."""
    responder = _Responder()
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):  # SIGHUP does not exist on Windows
        if hasattr(signal, name):
            signal.signal(cast(signal.Signals, getattr(signal, name)), responder.on_signal)
    try:
        args = _parser().parse_args(argv)
        raw = sys.stdin.read(_MAX_STDIN)
        event = json.loads(raw)
        if not isinstance(event, dict):
            raise ValueError("the hook input must be a JSON object")
        event = cast(dict[str, Any], event)
        config = load_config(
            event.get("cwd") if isinstance(event.get("cwd"), str) else None,
            wait_override=args.wait,
        )
        if args.headless:
            config = dataclasses.replace(config, headless=True)
        decision, reason, updated = decide(event, config)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            responder.answer("deny", "Not run: the signoff hook was interrupted.")
            return 0
        responder.answer(
            "deny", f"Not run: signoff could not approve this call ({type(exc).__name__}: {exc})."
        )
        return 0
    responder.answer(decision, reason, updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
