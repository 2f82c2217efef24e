# pyright: strict
"""A real n8n with the built signoff node, a real signoff server, and the example workflow.

The end-to-end tests need n8n installed (`install_n8n.py`, run by `nox -s n8n`, which also builds
the node): `SIGNOFF_N8N_HOME` names the install. Without it they are skipped, so the default
`pytest` run does not need Node 24 and n8n. One n8n serves the whole session (starting one takes
a while); every test uses a fresh signoff agent, by pointing the n8n credential at its key.

Data flow: a test POSTs an invoice to the workflow's webhook; the Signoff Approval node creates
the request with `$execution.resumeUrl/<node id>` as callback URL (that URL's host is the
relay, see relay.py) and the execution waits; a reviewer decides on the signoff server; signoff
signs and POSTs the callback, through the relay, to n8n, which runs the node's `webhook()`.
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from tests.integrations.n8n.n8n_process import N8n, execution_error
from tests.integrations.n8n.relay import CallbackRelay
from tests.support.server import ServerThread, World, sqlite_world

from signoff import Client, Request

ROOT = Path(__file__).resolve().parents[3]
NODE_PACKAGE = ROOT / "integrations" / "n8n"
EXAMPLE = ROOT / "examples" / "n8n" / "invoice-payment.json"
HOME_ENV = "SIGNOFF_N8N_HOME"

WORKFLOW_ID = "signoffInvoiceE2E"
CREDENTIAL_ID = "signoff-api"
CREDENTIAL_NAME = "Signoff API"
TRIGGER_PATH = "invoice-payment"
APPROVAL_NODE = "Ask finance to approve"
PACKAGE_PREFIX = "n8n-nodes-signoff."


TIMINGS: dict[str, float] = {}
"""Seconds per phase and scenario of this session's real-n8n run, printed at the end."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "real n8n: seconds per phase and scenario")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<40} {seconds:6.1f}")


def workflow_for_tests() -> dict[str, Any]:
    """The example workflow, as the tests import it.

    The only changes: the signoff node types are the ones n8n gives nodes loaded through
    `N8N_CUSTOM_EXTENSIONS` (`CUSTOM.*` instead of the npm package's `n8n-nodes-signoff.*`), a
    fixed workflow id, and the approval's timeout and maximum wait read from the trigger's body
    (`sla`, `max_wait_seconds`) with the example's values as defaults, so one imported workflow
    serves every scenario.
    """
    workflow = cast(dict[str, Any], json.loads(EXAMPLE.read_text()))
    workflow = copy.deepcopy(workflow)
    workflow["id"] = WORKFLOW_ID
    for node in cast(list[dict[str, Any]], workflow["nodes"]):
        if str(node["type"]).startswith(PACKAGE_PREFIX):
            node["type"] = "CUSTOM." + str(node["type"]).removeprefix(PACKAGE_PREFIX)
        if node["name"] == APPROVAL_NODE:
            options = cast(dict[str, Any], node["parameters"]["options"])
            body = "$('New invoice').item.json.body"
            options["timeout"] = f"={{{{ {body}.sla || '{options['timeout']}' }}}}"
            options["maxWaitSeconds"] = f"={{{{ {body}.max_wait_seconds || 0 }}}}"
    return workflow


def approval_node_id() -> str:
    nodes = cast(list[dict[str, Any]], json.loads(EXAMPLE.read_text())["nodes"])
    return next(str(n["id"]) for n in nodes if n["name"] == APPROVAL_NODE)


@pytest.fixture(scope="session")
def n8n_install() -> Path:
    """The n8n install the nox session made, or skip."""
    folder = os.environ.get(HOME_ENV)
    if not folder:
        pytest.skip(f"{HOME_ENV} is not set: run `uv run nox -s n8n` for the real-n8n tests")
    path = Path(folder)
    if not (path / ".complete").is_file():
        pytest.fail(f"{HOME_ENV}={folder} is not a finished n8n install (install_n8n.py)")
    built = NODE_PACKAGE / "dist" / "nodes" / "SignoffApproval" / "SignoffApproval.node.js"
    if not built.is_file():
        pytest.fail(f"the node is not built ({built}): run `npx n8n-node build` in {NODE_PACKAGE}")
    return path


@pytest.fixture(scope="session")
def signoff_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One real signoff server (SQLite) for the session."""
    with sqlite_world(tmp_path_factory.mktemp("signoff")) as world:
        yield world


def published_keys(url: str) -> list[str]:
    keys = httpx.get(f"{url}/v1/keys", timeout=10).json()["webhook_keys"]
    return [str(k["public_key"]) for k in keys]


@dataclass
class E2E:
    """Everything a test needs: signoff, n8n, the relay, and helpers to drive the workflow."""

    world: World
    n8n: N8n
    relay: CallbackRelay
    server_keys: list[str]
    reviewer: Client
    relay_url: str
    timings: dict[str, float] = field(default_factory=lambda: TIMINGS)

    def use_key(self, key: str, *, extra_keys: tuple[str, ...] = ()) -> None:
        """Point n8n's Signoff API credential at an agent key; it pins the server's keys."""
        self.n8n.update_credential(
            CREDENTIAL_ID,
            CREDENTIAL_NAME,
            "signoffApi",
            {
                "serverUrl": self.world.url,
                "apiKey": key,
                "webhookSecret": " ".join([*self.server_keys, *extra_keys]),
            },
        )

    def use_agent(self) -> tuple[str, Client]:
        """A fresh signoff agent, whose key n8n's credential now holds."""
        key = self.world.agent_key(f"n8n-agent-{uuid.uuid4().hex[:8]}")
        self.use_key(key)
        return key, self.world.client(key)

    def trigger(self, invoice: Mapping[str, Any]) -> None:
        """POST an invoice to the workflow's webhook (n8n answers once the execution started)."""
        answer = httpx.post(
            f"{self.n8n.url}/webhook/{TRIGGER_PATH}", json=dict(invoice), timeout=30
        )
        assert answer.status_code == 200, answer.text

    def last_error(self) -> str:
        """The error of the workflow's newest execution, for failure messages."""
        executions = self.n8n.executions(WORKFLOW_ID)
        if not executions:
            return "n8n ran no execution"
        newest = self.n8n.execution(str(executions[0]["id"]))
        error = execution_error(newest)
        fields = ("message", "description", "httpCode", "node")
        return f"execution {newest['id']} is {newest['status']}: " + json.dumps(
            {k: error.get(k) for k in fields}, default=str
        )

    def await_request(self, agent: Client, timeout: float = 30) -> Request:
        """The one request the agent's workflow run created, once it exists."""
        deadline = time.monotonic() + timeout
        while True:
            made = list(agent.iter_requests())
            if made:
                assert len(made) == 1, f"one request per execution, got {[r.id for r in made]}"
                return made[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no request was created: {self.last_error()}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def e2e(
    n8n_install: Path, signoff_world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2E]:
    """n8n with the example workflow published, the relay in front of it, signoff behind."""
    folder = tmp_path_factory.mktemp("n8n-user")
    relay = CallbackRelay("http://127.0.0.1:1")  # n8n's port is known once it is configured
    with ServerThread(app=relay) as relay_server:
        n8n = N8n(
            install=n8n_install,
            user_folder=folder,
            webhook_url=f"{relay_server.url}/",
            custom_extensions=NODE_PACKAGE / "dist",
        )
        relay.n8n_url = n8n.url
        server_keys = published_keys(signoff_world.url)
        timings = TIMINGS
        started = time.monotonic()
        credential = {
            "id": CREDENTIAL_ID,
            "name": CREDENTIAL_NAME,
            "type": "signoffApi",
            "data": {
                "serverUrl": signoff_world.url,
                "apiKey": signoff_world.agent_key("n8n-setup"),
                "webhookSecret": " ".join(server_keys),
            },
        }
        (folder / "credentials.json").write_text(json.dumps([credential]))
        (folder / "workflow.json").write_text(json.dumps(workflow_for_tests()))
        try:
            n8n.cli("import:credentials", f"--input={folder / 'credentials.json'}")
            n8n.cli("import:workflow", f"--input={folder / 'workflow.json'}")
            n8n.cli("publish:workflow", f"--id={WORKFLOW_ID}")
            timings["import"] = time.monotonic() - started
            n8n.start()
            timings["start"] = n8n.starts[-1]
            reviewer = signoff_world.client(
                signoff_world.reviewer_token("finance-approver", email="alice@example.com")
            )
            yield E2E(signoff_world, n8n, relay, server_keys, reviewer, relay_server.url, timings)
        finally:
            n8n.stop()
        phoned = n8n.phoned_home()
        assert not phoned, f"n8n tried to reach the internet: {phoned[:5]}"
