"""`signoff check` and `signoff serve --config` on good and bad files (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from signoff_server.cli import app

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "signoff.yaml"
TWO = """\
people: [{email: a@x.io}, {email: b@x.io}]
roles:
  approvers:
    members: [a@x.io, b@x.io]
    gap_policy: fail
    schedule:
      layers:
        - name: office
          anchor: 2026-01-05T09:00
          turn: P1W
          groups: [a@x.io, b@x.io]
          windows: [{days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00"}]
policies:
  - name: pair
    route: approvers
    approvals: {mode: threshold, required: 3}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_the_demo_control_map() -> None:
    code, out, _ = run("check", "--config", str(DEMO))
    assert code == 0, out
    for text in ("role finance-approver", "alice@example.com", "large-payment", "can be met"):
        assert text in out
    code, out, _ = run("check", "--config", str(DEMO), "--json", "--days", "2")
    assert code == 0
    control = json.loads(out)
    assert control["ok"] is True
    assert [r["role"] for r in control["roles"]] == ["finance-approver", "finance-manager", "admin"]


def test_check_fails_on_an_unmeetable_quorum_and_an_uncovered_gap(tmp_path: Path) -> None:
    path = tmp_path / "signoff.yaml"
    path.write_text(TWO)
    code, out, _ = run("check", "--config", str(path), "--days", "7")
    assert code == 1
    assert "quorum cannot be met: needs 3 distinct approvers from approvers; only 2" in out
    assert "problem: role approvers: nobody on shift" in out
    # The server refuses the same file, naming the place.
    code, _, err = run("serve", "--config", str(path), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2
    assert f"{path}:16: policies[0].approvals: policy 'pair': needs 3 distinct" in err


def test_check_names_file_and_line_of_each_error(tmp_path: Path) -> None:
    path = tmp_path / "signoff.yaml"
    path.write_text(TWO.replace("turn: P1W", "turn: 1w").replace("route: approvers", "route: x"))
    code, out, err = run("check", "--config", str(path))
    assert code == 2
    assert out == ""
    assert f"{path}:10: roles.approvers.schedule.layers[0].turn:" in err
    assert "Traceback" not in err
    code, _, err = run("check", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "No such file" in err
