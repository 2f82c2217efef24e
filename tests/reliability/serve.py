"""Server processes for the reliability suite.

`python serve.py [--log PATH] serve SETTINGS_JSON PORT` runs the app `signoff serve` runs
(`create_app` under uvicorn, JSON logs on stderr) with the suite's settings: fast timer ticks and
short callback retries, so that a bounded run sees deadlines, retries and re-deliveries. One more
knob, `timer_lease` (seconds), shortens how long a claim holds a timer (60 s in production):
after a SIGKILL, timers the dead process had claimed are claimed again when their lease runs
out, and the suite should not wait a minute for that. A shorter lease is harsher on the fencing,
not kinder: claims run out (and are re-claimed) more often.

`python serve.py [--log PATH] cli ARGS...` runs the `signoff` command line.

`python serve.py zygote` imports the server once, then forks one process per command it reads
(one JSON line each on stdin), so a (re)start costs milliseconds instead of seconds of imports
on a busy machine. Each child is a process of its own (its own session; it dies with the zygote,
which exits when its stdin closes) and is killed with a real SIGKILL. Commands, one answer line
each: `{"argv": [...]}` → `{"pid": N}`; `{"wait": N, "timeout": S}` → `{"exit": status|null}`
(null: still running after S seconds; a signal is reported as its negative number).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from datetime import timedelta
from typing import Any

_PR_SET_PDEATHSIG = 1


def _detach(log: str | None) -> None:
    """Own session; die with the parent (Linux); stdout and stderr to `log`, whose directory
    becomes the working directory (where files with default paths, e.g. `./signoff-secret.key`
    for PostgreSQL, are created: never the repository)."""
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if log is not None:
        os.chdir(os.path.dirname(os.path.abspath(log)))
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def serve(settings_json: str, port: int) -> None:
    """Build the app from the settings and serve it until stopped or killed."""
    import uvicorn

    from signoff_server.app import create_app
    from signoff_server.logs import configure_logging
    from signoff_server.settings import Settings

    options: dict[str, Any] = json.loads(settings_json)
    lease = options.pop("timer_lease", None)
    page_limit = options.pop("sqlite_page_limit_file", None)
    for name in ("callback_retry_delays", "callback_allow"):
        if name in options:
            options[name] = tuple(options[name])
    configure_logging(options.pop("log_level", "warning"))
    app = create_app(Settings(**options))
    if lease is not None:
        state = app.state.signoff
        state.scheduler.lease = timedelta(seconds=float(lease))
        state.callbacks.delivery.lease = timedelta(seconds=float(lease))
    if page_limit is not None:
        for engine in app.state.signoff.db.engines:  # the event loop's too: creates run there
            _limit_pages(engine, page_limit)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def _limit_pages(engine: Any, path: str) -> None:
    """The disk-full stand-in where no tiny filesystem can be mounted: on every checkout, the
    connection's `PRAGMA max_page_count` is set from the number in `path` (SQLite then fails a
    write that would grow the file beyond it with SQLITE_FULL, "database or disk is full", as
    a full disk does). Writing a larger number "frees space"."""
    from pathlib import Path

    from sqlalchemy import event

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        limit = int(Path(path).read_text())
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count = {limit}")
        cursor.close()

    event.listen(engine, "checkout", checkout)


def zygote() -> None:
    """Fork a child per command read from stdin; reap children; answer on stdout."""
    import importlib
    import time

    for name in ("httpx", "uvicorn", "signoff_server.app", "signoff_server.cli"):
        importlib.import_module(name)  # once here, for every child

    exits: dict[int, int] = {}

    def reap(*_: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            exits[pid] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    signal.signal(signal.SIGCHLD, reap)
    out = sys.stdout
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        if "argv" in command:
            pid = os.fork()
            if pid == 0:  # the child: never returns into this loop
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = 0
                try:
                    main(list(command["argv"]))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
            answer: dict[str, Any] = {"pid": pid}
        else:
            pid, deadline = int(command["wait"]), time.monotonic() + float(command["timeout"])
            reap()
            while pid not in exits and time.monotonic() < deadline:
                time.sleep(0.01)
                reap()
            answer = {"exit": exits.get(pid)}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main(argv: list[str]) -> None:
    """Dispatch `serve`, `cli` or `zygote`."""
    if argv[:1] == ["zygote"]:
        zygote()
        return
    log = None
    if argv[:1] == ["--log"]:
        log, argv = argv[1], argv[2:]
    _detach(log)
    if argv[0] == "serve":
        serve(argv[1], int(argv[2]))
    elif argv[0] == "cli":
        from signoff_server.cli import app

        app(argv[1:], prog_name="signoff")
    else:
        raise SystemExit(f"serve.py: unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
