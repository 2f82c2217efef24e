"""docs/callbacks.md runs: its receiver snippets verify real callbacks, its schedule and its
commands are the code's."""

from __future__ import annotations

import re
import shlex
import threading
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from signoff import CallbackStatus, Status, Verdict
from signoff_server.cli import app as cli
from signoff_server.settings import CALLBACK_RETRY_DELAYS

from .callback_support import Receiver, callback_world, invoice, wait_for
from .conftest import free_port

DOC = Path(__file__).parents[2] / "docs" / "callbacks.md"


def _snippet(name: str) -> str:
    """The ```python block whose first line is `# <name>`."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    (found,) = [b for b in blocks if b.startswith(f"# {name}\n")]
    return found


def _run(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": name.removesuffix(".py")}
    exec(compile(_snippet(name), f"{DOC}:{name}", "exec"), namespace)  # noqa: S102 - our docs
    return namespace


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_python_receiver_snippet_verifies_real_callbacks(
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with callback_world(store_url, tmp_path) as world:
        monkeypatch.setenv("SIGNOFF_URL", world.url)
        receiver_module = _run("receiver.py")
        agent = world.client(world.agent_key())
        reviewer = world.client(world.reviewer_token("finance-approver"))

        # Serve the snippet's `app` the way the comment says (uvicorn on a port).
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(receiver_module["app"], host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_for("the snippet's receiver", lambda: server.started)
            url = f"http://127.0.0.1:{port}/"
            approved = agent.create_request(invoice(url, correlation={"thread_id": "t-1"}))
            rejected = agent.create_request(invoice(url, correlation={"thread_id": "t-2"}))
            reviewer.decide(approved.id, Verdict.EDIT, arguments={"amount": "12250.00"})
            reviewer.decide(rejected.id, Verdict.REJECT)
            resumed: dict[str, Status] = receiver_module["resumed"]
            wait_for("both callbacks", lambda: len(resumed) == 2)
            for request_id in (approved.id, rejected.id):
                wait_for(
                    "delivered",
                    lambda r=request_id: (
                        agent.get_request(r).callback_status is CallbackStatus.DELIVERED
                    ),
                )
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    assert resumed == {"t-1": Status.APPROVED, "t-2": Status.REJECTED}
    assert "t-1: run payments.release with {'amount': '12250.00'}" in capsys.readouterr().out


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_hmac_snippet_verifies_real_callbacks(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with callback_world(store_url, tmp_path) as world:
        agent = world.client(world.agent_key("n8n-agent"))
        reviewer = world.client(world.reviewer_token("finance-approver"))
        minted = CliRunner().invoke(
            cli, ["webhook-keys", "hmac-create", "--agent", "n8n-agent", "--db", store_url]
        )
        assert minted.exit_code == 0
        monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRET", minted.stdout.strip())
        handle = _run("hmac_receiver.py")["handle"]
        with Receiver(answer=lambda _n: 200) as receiver:
            created = agent.create_request(invoice(receiver.url))
            reviewer.decide(created.id, Verdict.APPROVE)
            wait_for("the callback", lambda: len(receiver.deliveries) == 1)
    (delivery,) = receiver.deliveries
    assert handle(delivery.body, delivery.headers) == 200
    assert handle(delivery.body.replace(b"approved", b"rejected"), delivery.headers) == 401
    assert handle(delivery.body, {**delivery.headers, "webhook-signature": "v1,junk"}) == 401
    assert handle(delivery.body, {}) == 401


def test_the_documented_schedule_is_the_default() -> None:
    section = DOC.read_text().split("### Retry schedule", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (\d+) (second|minute|hour)s? \|$", section, flags=re.M)
    unit = {"second": 1, "minute": 60, "hour": 3600}
    documented = [(int(n), int(v) * unit[u]) for n, v, u in rows]
    assert documented == [(i + 1, d) for i, d in enumerate(CALLBACK_RETRY_DELAYS)]
    total_hours = sum(CALLBACK_RETRY_DELAYS) / 3600
    assert (
        f"{len(CALLBACK_RETRY_DELAYS) + 1} attempts over about {total_hours:.1f} hours" in section
    )


def test_every_documented_command_exists() -> None:
    runner = CliRunner()
    shell = "\n".join(re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL))
    commands = re.findall(r"^(?:\S+=\$\()?signoff ([a-z-]+(?: [a-z][a-z-]*)?)", shell, re.M)
    assert len(commands) >= 8
    for command in set(commands):
        words = shlex.split(command)
        result = runner.invoke(cli, [*words, "--help"])
        assert result.exit_code == 0, (command, result.output)
