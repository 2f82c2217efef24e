"""What the tamper-evident audit log costs, and how fast an export of 1,000,000 entries verifies.

Run it with `uv run python tests/benchmarks/bench_audit.py [--seconds 5] [--rounds 4]
[--entries 1000000] [--postgres] [--json PATH]`.

1. **Create throughput with and without the log.** Two signoff server processes on fresh
   databases of the same backend serve the same workload: 16 concurrent clients each sending
   `POST /v1/requests` (the reference invoice, agent key) back to back; every create appends two
   audit events (`request.created`, `request.routed`). *With the log* is the server as shipped
   (canonical entries, Merkle frontier, node rows, checkpoint signing every 1000 entries or 60 s).
   *Without the log* is the same server with `audit.append` swapped for the pre-0003 plain INSERT
   (`--serve plain`) and no checkpoint signing. Measured slices alternate between the two (after
   a warm-up each) within one run, so machine load hits both alike; the figure is the median
   slice rate. Target: the log costs under 15% of create throughput. The same workload is also
   run without HTTP (`Lifecycle.create` in this process, one caller, alternating rounds), which
   shows the store's own cost per create with and without the log.

2. **`audit verify` time for 1,000,000 entries.** An export with that many entries (shaped like
   the server's: RFC 8785 entries of ~560 bytes, a signed checkpoint every 1000 entries with its
   consistency proof, the leaf hash list) is written with the server's own encoding, then
   verified by `signoff.audit.verify_export` in this process and by the `signoff audit verify`
   command. Target: under 15 s.

Exit status: 0 when both targets are met, 1 when one is missed, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _report import Figure, record

OVERHEAD_TARGET = 0.15
VERIFY_TARGET_S = 15.0
CLIENTS = 16
ROLE = "finance-approver"
DEFAULT_PG_ADMIN = os.environ.get(
    "SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PAYLOAD: dict[str, Any] = {
    "action": {
        "name": "payments.release",
        "arguments": {
            "invoice_id": "INV-1042",
            "amount": "12500.00",
            "currency": "EUR",
            "vendor_account": "DE89370400440532013000",
        },
    },
    "business_object": {
        "type": "invoice",
        "id": "INV-1042",
        "attributes": {"amount": "12500.00", "currency": "EUR", "vendor": "Acme GmbH"},
    },
    "summary": "Release EUR 12,500.00 to Acme GmbH",
    "route": {"role": ROLE},
    "correlation": {"thread_id": "t-1"},
}


# --- server processes ------------------------------------------------------------------------


def _plain_append(conn: Any, **event: Any) -> None:
    """The audit append before revision 0003: one INSERT, seq from the database, no hashing."""
    from sqlalchemy import func, insert

    from signoff_server.schema import audit_events

    seq = None if conn.dialect.name == "sqlite" else func.nextval("bench_plain_seq")
    conn.execute(
        insert(audit_events).values(
            seq=seq,
            at=event["at"],
            type=event["type"],
            request_id=event.get("request_id"),
            actor=event["actor"],
            data=event.get("data") or {},
        )
    )


def serve(argv: list[str]) -> None:
    """Server-process entry point: `bench_audit.py --serve log|plain --url U --port N --dir D`."""
    import uvicorn

    from signoff_server import audit
    from signoff_server.app import create_app
    from signoff_server.settings import Settings

    parser = argparse.ArgumentParser(prog="bench_audit.py --serve")
    parser.add_argument("--serve", choices=["log", "plain"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    if args.serve == "plain":
        audit.append = _plain_append  # type: ignore[assignment]
    settings = Settings(
        database_url=args.url,
        audit_key_file=str(Path(args.dir) / f"audit-{args.serve}.key"),
        webhook_keys_path=str(Path(args.dir) / f"webhooks-{args.serve}.json"),
        secret_key_file=str(Path(args.dir) / f"secret-{args.serve}.key"),
        run_checkpoints=args.serve == "log",
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(variant: str, db_url: str, workdir: Path) -> Iterator[str]:
    """Start one server process; wait for /healthz; always stop it."""
    port = free_port()
    log = (workdir / f"{variant}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", variant, "--url", db_url,
         "--port", str(port), "--dir", str(workdir)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the {variant} server exited; see {log.name}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {variant} server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def prepare_store(url: str, variant: str) -> str:
    """Migrate, add a reviewer for the route and an agent key; returns the key."""
    from sqlalchemy import text

    from signoff_server.db import Database, migrate
    from signoff_server.identity import create_agent_key, set_user

    migrate(url)
    db = Database(url)
    try:
        with db.write() as conn:
            set_user(conn, "alice@example.com", [ROLE])
            if variant == "plain" and not db.is_sqlite:
                conn.execute(text("CREATE SEQUENCE bench_plain_seq"))
            return create_agent_key(conn, "finance-agent")
    finally:
        db.dispose()


async def _load(url: str, key: str, seconds: float) -> int:
    """Creates completed by CLIENTS concurrent clients within `seconds`."""
    done = 0
    stop = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def one() -> None:
            nonlocal done
            while time.monotonic() < stop:
                response = await client.post("/v1/requests", json=PAYLOAD)
                if response.status_code != 201:
                    raise RuntimeError(f"create failed: {response.status_code} {response.text}")
                if time.monotonic() <= stop:
                    done += 1

        await asyncio.gather(*(one() for _ in range(CLIENTS)))
    return done


def measure_creates(
    urls: dict[str, str], workdir: Path, seconds: float, rounds: int
) -> dict[str, Any]:
    """Alternating slices of the create workload against each variant's server."""
    keys = {variant: prepare_store(url, variant) for variant, url in urls.items()}
    rates: dict[str, list[float]] = {variant: [] for variant in urls}
    with (
        running_server("log", urls["log"], workdir) as log_url,
        running_server("plain", urls["plain"], workdir) as plain_url,
    ):
        servers = {"log": log_url, "plain": plain_url}
        for _ in range(rounds):
            for variant in ("log", "plain"):
                asyncio.run(_load(servers[variant], keys[variant], 1.0))  # warm-up
                started = time.monotonic()
                done = asyncio.run(_load(servers[variant], keys[variant], seconds))
                rates[variant].append(done / (time.monotonic() - started))
    with_log, without = statistics.median(rates["log"]), statistics.median(rates["plain"])
    return {
        "creates_per_s_with_log": round(with_log, 1),
        "creates_per_s_without_log": round(without, 1),
        "slices_with_log": [round(r, 1) for r in rates["log"]],
        "slices_without_log": [round(r, 1) for r in rates["plain"]],
        "log_overhead": round(1 - with_log / without, 4),
    }


def measure_store_creates(workdir: Path, creates: int, rounds: int) -> dict[str, Any]:
    """The same create workload without HTTP: `Lifecycle.create` called in this process, one
    caller, alternating rounds; isolates what the log adds to the store's work per create."""
    from signoff.models import RequestCreate
    from signoff_server import audit
    from signoff_server.app import create_app
    from signoff_server.identity import authenticate
    from signoff_server.settings import Settings

    real_append = audit.append
    body = RequestCreate.model_validate(PAYLOAD)
    apps: dict[str, Any] = {}
    for variant in ("log", "plain"):
        url = f"sqlite:///{workdir / f'store-{variant}.db'}"
        key = prepare_store(url, variant)
        app = create_app(
            Settings(
                database_url=url,
                audit_key_file=str(workdir / f"store-{variant}.key"),
                webhook_keys_path=str(workdir / f"store-{variant}.json"),
            )
        )
        state = app.state.signoff
        with state.db.read() as conn:
            apps[variant] = (state, authenticate(conn, key))
    per_create: dict[str, list[float]] = {"log": [], "plain": []}
    try:
        for _ in range(rounds):
            for variant in ("log", "plain"):
                state, principal = apps[variant]
                audit.append = real_append if variant == "log" else _plain_append  # type: ignore[assignment]
                started = time.perf_counter()
                for _ in range(creates):
                    state.lifecycle.create(principal, body)
                per_create[variant].append((time.perf_counter() - started) / creates * 1000)
    finally:
        audit.append = real_append  # type: ignore[assignment]
        for state, _ in apps.values():
            state.db.dispose()
    with_log, without = statistics.median(per_create["log"]), statistics.median(per_create["plain"])
    return {
        "ms_per_create_with_log": round(with_log, 3),
        "ms_per_create_without_log": round(without, 3),
        "rounds_with_log": [round(x, 3) for x in per_create["log"]],
        "rounds_without_log": [round(x, 3) for x in per_create["plain"]],
        "log_overhead": round(1 - without / with_log, 4),
    }


# --- 1M-entry export ---------------------------------------------------------------------------


def synthesize_export(directory: Path, entries: int, every: int = 1000) -> str:
    """An export of `entries` server-shaped entries; returns the verifier key."""
    import rfc8785

    from signoff.audit import Checkpoint, SignerKey, sign_note
    from signoff.merkle import Frontier, consistency_proof, leaf_hash, subtree_hash
    from signoff_server.audit import encode_entry

    key = SignerKey.generate("bench.example/signoff")
    directory.mkdir(parents=True)
    t0 = datetime(2026, 11, 27, tzinfo=UTC)
    data = {
        "action": PAYLOAD["action"],
        "business_object": PAYLOAD["business_object"],
        "risk": "high",
        "correlation": {"thread_id": "t-1"},
        "asked": {"route": {"role": ROLE}, "sla": "PT2H", "on_timeout": "reject"},
    }
    # The entries differ only in seq, time and request id, so they are written from one canonical
    # template; checked against the server's own encoder.
    probe, _ = encode_entry(seq=123, at=t0, type="request.created", request_id="req_X",
                            actor="agent:finance-agent", data=data)  # fmt: skip
    template = (
        probe.decode()
        .replace('"seq":123', '"seq":{seq}')
        .replace('"req_X"', '"req_{rid:026d}"')
        .replace("2026-11-27T00:00:00.000000Z", "{at}")
    )
    template = template.replace("{", "{{").replace("}", "}}")
    for field in ("seq", "rid:026d", "at"):
        template = template.replace("{{" + field + "}}", "{" + field + "}")

    def line(i: int) -> bytes:
        at = (t0 + timedelta(microseconds=i * 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return template.format(seq=i, rid=i // 4, at=at).encode()

    for i in (0, 1, 999_999, 12_345):  # the template is exactly what the server would write
        assert line(i) == rfc8785.dumps(json.loads(line(i)))
    tree = Frontier()
    known: dict[tuple[int, int], bytes] = {}
    checkpoints: list[dict[str, Any]] = []
    previous: tuple[int, bytes] | None = None
    with (
        (directory / "entries.jsonl").open("wb") as out,
        (directory / "leaf_hashes.txt").open("w") as leaves,
    ):
        for i in range(entries):
            entry = line(i)
            out.write(entry + b"\n")
            leaf = leaf_hash(entry)
            leaves.write(leaf.hex() + "\n")
            known[(0, i)] = leaf
            for level, idx, h in tree.append(leaf):
                known[(level, idx)] = h
            if tree.size % every == 0 or tree.size == entries:
                root = tree.root()
                proof = (
                    consistency_proof(
                        previous[0],
                        tree.size,
                        lambda a, b: subtree_hash(a, b, lambda lv, ix: known[(lv, ix)]),
                    )
                    if previous
                    else []
                )
                note = sign_note(Checkpoint(key.name, tree.size, root).text(), key)
                checkpoints.append(
                    {
                        "size": tree.size,
                        "note": note,
                        "consistency": {"from": previous[0], "proof": [p.hex() for p in proof]}
                        if previous
                        else None,
                    }
                )
                previous = (tree.size, root)
    with (directory / "checkpoints.jsonl").open("w") as f:
        for record in checkpoints:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    (directory / "verifier.key").write_text(f"{key.verifier()}\n")
    (directory / "manifest.json").write_text(
        json.dumps({"format": "signoff-audit-export/1", "size": entries}) + "\n"
    )
    return str(key.verifier())


def measure_verify(workdir: Path, entries: int) -> dict[str, Any]:
    """Time verify_export and the `signoff audit verify` command on a synthesized export."""
    from signoff.audit import VerifierKey, verify_export

    directory = workdir / "export"
    started = time.monotonic()
    vkey = synthesize_export(directory, entries)
    built = time.monotonic() - started
    size_mb = sum(p.stat().st_size for p in directory.iterdir()) / 1e6

    started = time.monotonic()
    report = verify_export(directory, [VerifierKey.parse(vkey)])
    in_process = time.monotonic() - started
    if not report.ok:
        raise RuntimeError(f"the synthesized export does not verify: {report.error}")

    signoff_cli = shutil.which("signoff") or str(Path(sys.executable).parent / "signoff")
    started = time.monotonic()
    result = subprocess.run(
        [signoff_cli, "audit", "verify", str(directory), "--key", vkey],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    command = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"signoff audit verify failed: {result.stdout}{result.stderr}")
    return {
        "entries": entries,
        "export_mb": round(size_mb, 1),
        "export_build_s": round(built, 2),
        "verify_export_s": round(in_process, 2),
        "audit_verify_command_s": round(command, 2),
    }


# --- main --------------------------------------------------------------------------------------


@contextmanager
def pg_databases(admin_url: str, names: list[str]) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases, always dropped."""
    import psycopg
    from psycopg import sql

    base = admin_url.rsplit("/", 1)[0]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {name: f"{base}/{name}" for name in names}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def report_figures(summary: dict[str, Any]) -> list[Figure]:
    """The summary's figures for the benchmark report (only SQLite's overhead has a target)."""
    figures = [
        Figure(
            figure=f"{backend}: creates/s with the audit log, {CLIENTS} clients",
            value=summary[backend]["creates_per_s_with_log"],
            unit="creates/s",
            target=f"≥ {1 - OVERHEAD_TARGET:.2f}x (log costs < {OVERHEAD_TARGET:.0%})"
            if backend == "sqlite"
            else "",
            passed=summary[backend]["log_overhead"] < OVERHEAD_TARGET
            if backend == "sqlite"
            else None,
            compared_with="same server without the log (plain INSERT)",
            compared_value=summary[backend]["creates_per_s_without_log"],
            ratio=1 - summary[backend]["log_overhead"],
        )
        for backend in ("sqlite", "postgres")
        if backend in summary
    ]
    store = summary["sqlite_in_process"]
    verify = summary["verify"]
    return [
        *figures,
        Figure(
            figure="sqlite: Lifecycle.create in process, per create with the log",
            value=store["ms_per_create_with_log"],
            unit="ms",
            compared_with="without the log",
            compared_value=store["ms_per_create_without_log"],
            ratio=store["ms_per_create_with_log"] / store["ms_per_create_without_log"],
        ),
        Figure(
            figure=f"audit verify of {verify['entries']:,} entries (verify_export)",
            value=verify["verify_export_s"],
            unit="s",
            target=f"< {VERIFY_TARGET_S:.0f} s",
            passed=verify["verify_export_s"] < VERIFY_TARGET_S,
            note=f"`signoff audit verify` command: {verify['audit_verify_command_s']} s; "
            f"export {verify['export_mb']} MB",
        ),
    ]


def main() -> int:
    """Run both measurements and print a JSON summary."""
    if "--serve" in sys.argv:
        serve(sys.argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measured slice")
    parser.add_argument("--rounds", type=int, default=4, help="slices per variant")
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to verify")
    parser.add_argument(
        "--store-creates", type=int, default=300, help="creates per in-process round"
    )
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()
    summary: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            work = Path(tmp)
            (work / "sqlite").mkdir()
            urls = {v: f"sqlite:///{work / 'sqlite' / f'{v}.db'}" for v in ("log", "plain")}
            summary["sqlite"] = measure_creates(urls, work / "sqlite", args.seconds, args.rounds)
            print(json.dumps({"sqlite": summary["sqlite"]}), flush=True)
            summary["sqlite_in_process"] = measure_store_creates(
                work / "sqlite", args.store_creates, args.rounds * 2
            )
            print(json.dumps({"sqlite_in_process": summary["sqlite_in_process"]}), flush=True)
            if args.postgres:
                (work / "pg").mkdir()
                suffix = uuid.uuid4().hex[:8]
                names = [f"bench_audit_log_{suffix}", f"bench_audit_plain_{suffix}"]
                with pg_databases(args.pg_admin, names) as pg:
                    pg_urls = {"log": pg[names[0]], "plain": pg[names[1]]}
                    summary["postgres"] = measure_creates(
                        pg_urls, work / "pg", args.seconds, args.rounds
                    )
                print(json.dumps({"postgres": summary["postgres"]}), flush=True)
            summary["verify"] = measure_verify(work, args.entries)
    except Exception as exc:  # report it and exit 2
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    summary["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    overhead_ok = summary["sqlite"]["log_overhead"] < OVERHEAD_TARGET
    verify_ok = summary["verify"]["verify_export_s"] < VERIFY_TARGET_S
    summary["targets"] = {
        "log_overhead_under": OVERHEAD_TARGET,
        "verify_1m_under_s": VERIFY_TARGET_S,
        "met": overhead_ok and verify_ok,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    record(report_figures(summary))
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if overhead_ok and verify_ok else 1


if __name__ == "__main__":
    sys.exit(main())
