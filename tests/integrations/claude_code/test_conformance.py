"""The adapter conformance scenarios (tests/integrations/conformance) for the Claude Code hook.

The hook is not a callback receiver: Claude Code runs it once per tool call, and it long-polls
signoff with its agent key until the request closes (or answers `defer` in headless mode). So
the scenarios about delivering callbacks do not apply; every other scenario runs here with the
real Claude Code CLI (`claude -p`, bundled in the claude-agent-sdk wheel) against a scripted
Messages API, the hook installed by `signoff-claude-code install`, and a real signoff server.
"Executed" means the Bash command really ran (it writes `marker.txt`); "told" is the tool result
the CLI sent back to the model.

| scenario | applies | what the test shows |
|---|---|---|
| approve | yes | `allow`: the Bash call runs as asked |
| edit | yes | `allow` + `updatedInput`: the reviewer's command runs, not the asked one |
| reject | yes | `deny`: nothing runs; the model reads the reviewer's reason |
| respond | yes | `deny`: nothing runs; the model reads the reviewer's instruction |
| server_timeout | yes | a policy SLA passes: expired → `deny`, fail closed |
| duplicate_callback | no | no callbacks (see `NOT_APPLICABLE`) |
| step_not_pending | yes | the hook gave up and cancelled: a late approval is refused |
| forged_signature | no | no callbacks |
| stale_timestamp | no | no callbacks |
| two_gated_calls | yes | two Bash calls in one message: one request and one answer each |
| separate_process | yes | headless `defer` ends the process; `claude -p --resume` runs it |

Not checked here: the outcome report. The hook answers before the tool runs and nothing in it
sees the result, so it reports no outcome (a PostToolUse hook could).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk", reason="claude-agent-sdk is absent")

from tests.integrations.claude_code.cli import (
    CLI,
    install_project,
    requests_of,
    reviewer,
    run_claude,
    scripted,
)
from tests.integrations.claude_code.conftest import finish, hook_env, start_hook
from tests.integrations.conformance.suite import SCENARIOS
from tests.support.server import World

import signoff
from signoff import Status

pytestmark = pytest.mark.skipif(not CLI.exists(), reason="the bundled Claude Code CLI is absent")

WRITE = {"command": "echo approved > marker.txt", "description": "write the marker"}
EDITED = {"command": "echo edited > marker.txt", "description": "write the marker"}

NOT_APPLICABLE = {
    "duplicate_callback": (
        "the Claude Code hook receives no callbacks: it long-polls signoff with its agent key "
        "and reads the decision once; a re-run of the hook for the same call (claude -p "
        "--resume) finds the same request by its idempotency key (see separate_process)"
    ),
    "forged_signature": (
        "the Claude Code hook receives no callbacks, so there is no signature to forge: it reads "
        "decisions from signoff's API over the connection it opened, authenticated by its key"
    ),
    "stale_timestamp": (
        "the Claude Code hook receives no callbacks, so there is no delivery timestamp: it reads "
        "decisions from signoff's API over the connection it opened"
    ),
}


def agent_of(world: World) -> tuple[str, str]:
    """A fresh agent id and its key, so a test sees only its own requests."""
    agent = f"claude-{uuid.uuid4().hex[:8]}"
    return agent, world.agent_key(agent)


def marker(project: Path) -> str | None:
    """What the gated Bash command wrote, or None when it never ran."""
    path = project / "marker.txt"
    return path.read_text().strip() if path.exists() else None


def told(result: dict[str, Any]) -> str:
    """The text of a tool_result block (what the model reads)."""
    return json.dumps(result["content"])


def test_every_scenario_has_a_test() -> None:
    names = {scenario.name for scenario in SCENARIOS}
    assert set(NOT_APPLICABLE) <= names
    missing = [name for name in names if f"test_conformance_{name}" not in globals()]
    assert not missing, missing


def test_conformance_approve(signoff_world: World, tmp_path: Path) -> None:
    project = install_project(tmp_path)
    agent, key = agent_of(signoff_world)
    with (
        scripted(WRITE) as (api, url),
        reviewer(signoff_world, agent, lambda _: ("approve", {"comment": "fine"})) as decided,
    ):
        run_claude(project, url, signoff_world.url, key, "write the marker")
    assert marker(project) == "approved"
    assert not api.result_for(WRITE).get("is_error")
    [request] = requests_of(signoff_world, agent)  # one request per gated call
    assert [r.id for r in decided] == [request.id]
    assert request.action.name == "claude_code.Bash"
    assert dict(request.action.arguments) == WRITE
    assert request.correlation["tool_use_id"] in api.issued
    assert request.idempotency_key == (
        f"claude_code:{request.correlation['session_id']}:{request.correlation['tool_use_id']}"
    )


def test_conformance_edit(signoff_world: World, tmp_path: Path) -> None:
    project = install_project(tmp_path)
    agent, key = agent_of(signoff_world)
    edit = ("edit", {"arguments": EDITED, "comment": "say edited"})
    with scripted(WRITE) as (api, url), reviewer(signoff_world, agent, lambda _: edit):
        run_claude(project, url, signoff_world.url, key, "write the marker")
    # Claude Code ran the hook's `updatedInput`, not what the model asked for.
    assert marker(project) == "edited"
    assert not api.result_for(WRITE).get("is_error")
    [request] = requests_of(signoff_world, agent)
    assert request.final_decision is not None
    assert request.final_decision.verdict is signoff.Verdict.EDIT


def test_conformance_reject(signoff_world: World, tmp_path: Path) -> None:
    project = install_project(tmp_path)
    agent, key = agent_of(signoff_world)
    reject = ("reject", {"comment": "no writes today"})
    with scripted(WRITE) as (api, url), reviewer(signoff_world, agent, lambda _: reject):
        run_claude(project, url, signoff_world.url, key, "write the marker")
    assert marker(project) is None
    result = api.result_for(WRITE)
    assert result.get("is_error")
    assert "no writes today" in told(result), "the model reads why"
    assert [r.status for r in requests_of(signoff_world, agent)] == [Status.REJECTED]


def test_conformance_respond(signoff_world: World, tmp_path: Path) -> None:
    project = install_project(tmp_path)
    agent, key = agent_of(signoff_world)
    respond = ("respond", {"comment": "write it to notes.txt instead"})
    with scripted(WRITE) as (api, url), reviewer(signoff_world, agent, lambda _: respond):
        run_claude(project, url, signoff_world.url, key, "write the marker")
    assert marker(project) is None
    result = api.result_for(WRITE)
    assert result.get("is_error")
    assert "write it to notes.txt instead" in told(result), "the model gets the instruction"
    assert [r.status for r in requests_of(signoff_world, agent)] == [Status.RESPONDED]


def test_conformance_server_timeout(deadline_world: World, tmp_path: Path) -> None:
    # The hook would wait 270 s; the policy's SLA closes the request after 3 s.
    project = install_project(tmp_path)
    agent, key = agent_of(deadline_world)
    with scripted(WRITE) as (api, url):
        run_claude(project, url, deadline_world.url, key, "write the marker")
    assert marker(project) is None, "a timeout fails closed"
    result = api.result_for(WRITE)
    assert result.get("is_error")
    assert "no decision arrived before the deadline" in told(result), "the model is told"
    [request] = requests_of(deadline_world, agent)
    assert request.status is Status.EXPIRED
    final = request.final_decision
    assert final is not None
    assert final.verdict is signoff.Verdict.REJECT


def test_conformance_step_not_pending(signoff_world: World, tmp_path: Path) -> None:
    # Installed with a 33 s hook timeout, the hook stops waiting after 3 s: it cancels its
    # request and denies. The step is over; a reviewer approving later changes nothing.
    project = install_project(tmp_path, timeout=33)
    agent, key = agent_of(signoff_world)
    with scripted(WRITE) as (api, url):
        run_claude(project, url, signoff_world.url, key, "write the marker")
    assert marker(project) is None
    assert "cancelled" in told(api.result_for(WRITE))
    [request] = requests_of(signoff_world, agent)
    assert request.status is Status.CANCELLED
    late = signoff_world.client(signoff_world.reviewer_token("default"))
    with pytest.raises(signoff.Conflict):
        late.decide(request.id, "approve")
    assert requests_of(signoff_world, agent)[0].status is Status.CANCELLED
    assert marker(project) is None


def test_conformance_duplicate_callback() -> None:
    pytest.skip(NOT_APPLICABLE["duplicate_callback"])


def test_conformance_forged_signature() -> None:
    pytest.skip(NOT_APPLICABLE["forged_signature"])


def test_conformance_stale_timestamp() -> None:
    pytest.skip(NOT_APPLICABLE["stale_timestamp"])


def test_conformance_two_gated_calls(signoff_world: World, tmp_path: Path) -> None:
    # One assistant message with two Bash calls. Claude Code asks the PreToolUse hook for
    # them one after the other (the second request exists only once the first is answered),
    # so each call gets its own request, keyed by its tool_use_id, and its own answer.
    first = {"command": "echo first >> marker.txt", "description": "first"}
    second = {"command": "echo second >> marker.txt", "description": "second"}
    project = install_project(tmp_path)
    agent, key = agent_of(signoff_world)

    def decide(request: signoff.Request) -> tuple[str, dict[str, Any]]:
        if request.action.arguments == first:
            return ("reject", {"comment": "not this one"})
        return ("approve", {})

    with scripted(first, second) as (api, url), reviewer(signoff_world, agent, decide):
        run_claude(project, url, signoff_world.url, key, "write both")
    assert marker(project) == "second"
    assert "not this one" in told(api.result_for(first))
    assert not api.result_for(second).get("is_error")
    requests = requests_of(signoff_world, agent)
    assert [dict(r.action.arguments) for r in requests] == [first, second]
    assert [r.status for r in requests] == [Status.REJECTED, Status.APPROVED]
    assert {r.correlation["tool_use_id"] for r in requests} == set(api.issued)


def test_conformance_two_gated_calls_decided_out_of_order(
    signoff_world: World, tmp_path: Path
) -> None:
    # Two hook runs of one session waiting at once (as Claude Code runs hooks of calls that
    # may run concurrently), decided in the opposite order: each answer goes to its own call.
    env = hook_env(signoff_world.url, signoff_world.agent_key(), tmp_path)
    session = f"sess-{uuid.uuid4().hex[:10]}"
    events = [
        {"session_id": session, "cwd": str(tmp_path), "hook_event_name": "PreToolUse",
         "tool_name": "Bash", "tool_input": {"command": command},
         "tool_use_id": f"toolu_{uuid.uuid4().hex[:12]}"}
        for command in ("git push origin main", "git push origin dev")
    ]  # fmt: skip
    procs = [start_hook(event, env) for event in events]
    try:
        token = signoff_world.reviewer_token("default")
        with signoff.Client(base_url=signoff_world.url, api_key=token) as client:
            by_call: dict[str, signoff.Request] = {}
            deadline = time.monotonic() + 60
            while len(by_call) < 2:
                assert time.monotonic() < deadline, "the hooks never made their requests"
                for request in client.list_requests(status="pending").items:
                    if request.correlation.get("session_id") == session:
                        by_call[request.correlation["tool_use_id"]] = request
                time.sleep(0.1)
            first, second = (by_call[e["tool_use_id"]] for e in events)
            client.decide(second.id, "reject", comment="not dev")
            rejected = finish(procs[1])
            assert procs[0].poll() is None, "the first call still waits for its own decision"
            client.decide(first.id, "approve")
            approved = finish(procs[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                finish(proc)
    assert (approved.decision, rejected.decision) == ("allow", "deny")
    assert "not dev" in rejected.reason


def test_conformance_separate_process(signoff_world: World, tmp_path: Path) -> None:
    project = install_project(tmp_path)
    agent, key = agent_of(signoff_world)
    with scripted(WRITE) as (api, url):
        first = run_claude(
            project, url, signoff_world.url, key, "write it", SIGNOFF_CLAUDE_HEADLESS="1"
        )
        # The first `claude -p` process has exited: the session stopped at the deferred call.
        assert first["stop_reason"] == "tool_deferred", first
        assert marker(project) is None
        [pending] = requests_of(signoff_world, agent)
        assert pending.status is Status.PENDING
        assert pending.correlation["session_id"] == first["session_id"]
        signoff_world.client(signoff_world.reviewer_token("default")).decide(pending.id, "approve")
        resumed = run_claude(
            project, url, signoff_world.url, key, "--resume", first["session_id"],
            SIGNOFF_CLAUDE_HEADLESS="1",
        )  # fmt: skip
    assert resumed["session_id"] == first["session_id"]
    assert marker(project) == "approved"
    assert not api.result_for(WRITE).get("is_error")
    assert [r.id for r in requests_of(signoff_world, agent)] == [pending.id], "one request"
