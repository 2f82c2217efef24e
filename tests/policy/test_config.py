"""Loading signoff.yaml: the demo file, errors that name file:line and field, the checks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.models import ApprovalMode
from signoff_server.demo import DEMO_PEOPLE, demo_config_path
from signoff_server.policy.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo" / "signoff.yaml"
PACKAGED = ROOT / "packages" / "server" / "src" / "signoff_server" / "demo_signoff.yaml"

MINIMAL = """\
people:
  - email: alice@example.com
  - email: bob@example.com
roles:
  approvers:
    members: [alice@example.com, bob@example.com]
policies:
  - name: all
    route: approvers
"""


def errors(text: str, *, check_quorum: bool = True) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="f.yaml", check_quorum=check_quorum)
    return str(info.value).splitlines()


def test_the_demo_file_loads_and_is_what_the_demo_serves() -> None:
    config = load_config(DEMO)
    assert config.version == hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert [p.name for p in config.policies] == ["large-payment", "small-payment", "payment"]
    large = config.policies[0].body
    assert large.approvals is not None
    assert (large.approvals.mode, large.approvals.required) == (ApprovalMode.THRESHOLD, 2)
    assert (large.route, large.sla, large.escalation) == ("finance-approver", "PT2H", "payments")
    assert config.chains["payments"] == ({"wait": "PT30M"}, {"escalate_to": "finance-manager"})
    assert config.policies[1].body.auto == "approve"
    assert config.default.body.route == "admin"
    # `signoff serve --demo` loads this file; the package ships an identical copy.
    assert demo_config_path() == DEMO
    assert PACKAGED.read_bytes() == DEMO.read_bytes()
    # The demo's seeded people hold exactly the roles the file gives them.
    for email, (_, roles) in DEMO_PEOPLE.items():
        assert sorted(config.roles_of(email)) == sorted(roles), email


def test_minimal_file_and_fail_closed_default() -> None:
    config = parse_config(MINIMAL)
    assert config.default.body.auto == "reject"
    assert config.default.rule == "default"


def test_schema_errors_name_file_line_and_field() -> None:
    text = MINIMAL.replace(
        "    route: approvers\n", "    route: approvers\n    sla: PT1X\n    colour: red\n"
    )
    text += "  - route: approvers\n"
    assert errors(text) == [
        "f.yaml:10: policies[0].sla: 'PT1X' is not an ISO-8601 duration such as 'PT30M' or "
        "'P1DT2H'",
        "f.yaml:11: policies[0].colour: unknown field",
        "f.yaml:12: policies[1].name: Field required",
    ]


def test_yaml_errors_and_traps() -> None:
    assert errors("people: [\n")[0].startswith("f.yaml:2: (file): not valid YAML")
    assert errors("roles: {}\nroles: {}\n") == [
        "f.yaml:2: (file): duplicate key 'roles' (first on line 1)"
    ]
    assert errors("- 1\n") == ["f.yaml:1: (top level): must be a mapping"]
    # YAML 1.1 would read 17:00 as the number 1020 and `no` as false; we read strings.
    text = MINIMAL.replace(
        "    members: [alice@example.com, bob@example.com]\n",
        "    members: [alice@example.com, bob@example.com]\n"
        "    schedule:\n"
        "      layers:\n"
        "        - name: office\n"
        "          anchor: 2026-01-05T09:00\n"
        "          turn: P1W\n"
        "          groups: [alice@example.com, bob@example.com]\n"
        "          windows: [{days: [mon, tue], from: 09:00, to: 17:00}]\n",
    )
    window = parse_config(text).roles["approvers"].schedule
    assert window is not None
    assert window.rotations[0].windows[0].end == 17 * 60


def test_reference_errors() -> None:
    text = """\
people:
  - email: alice@example.com
    out_of_office:
      - {from: 2026-02-01, until: 2026-01-01, delegate: bob@example.com}
  - email: bob@example.com
roles:
  approvers:
    members: [alice@example.com, carl@example.com]
    gap_policy: fail
  managers:
    members: [bob@example.com]
escalations:
  up:
    - escalate_to: nobody
    - wait: PT5M
policies:
  - name: p
    match: {condition: "request.action.arguments.amount >< 1"}
    route: approvers
    escalation: up
  - name: q
    route: ghosts
  - name: r
    auto: approve
    sla: PT1H
default:
  auto: approve
"""
    found = errors(text)
    cel_error = found.pop(6)  # its wording is the CEL package's
    assert cel_error.startswith(
        "f.yaml:18: policies[0].match.condition: not a valid CEL condition: "
    )
    assert "Syntax error" in cel_error
    assert found == [
        "f.yaml:4: people[0].out_of_office[0].until: must be after 'from'",
        "f.yaml:4: people[0].out_of_office[0].delegate: bob@example.com cannot stand in for "
        "alice@example.com: does not hold approvers",
        "f.yaml:8: roles.approvers.members: carl@example.com is not in people",
        "f.yaml:9: roles.approvers.gap_policy: only a role with a schedule can have gaps",
        "f.yaml:14: escalations.up[0].escalate_to: no role 'nobody' in roles",
        "f.yaml:15: escalations.up[1]: a chain cannot end with wait: nothing follows it",
        "f.yaml:22: policies[1].route: no role 'ghosts' in roles",
        "f.yaml:25: policies[2].sla: a policy with auto: approve decides at once: drop it",
        "f.yaml:27: default.auto: the default policy fails closed: it cannot auto-approve",
    ]


def test_unknown_cel_variable_is_refused() -> None:
    text = MINIMAL + "    match: {condition: 'summary.contains(\"urgent\")'}\n"
    assert errors(text) == [
        "f.yaml:10: policies[0].match.condition: not a valid CEL condition: unknown variable "
        "'summary': a condition can only use 'request'"
    ]


@pytest.mark.parametrize(
    ("approvals", "problem"),
    [
        ("{mode: threshold, required: 3}", "needs 3 distinct approvers from approvers; only 2"),
        ("{mode: all_of, roles: [approvers, solo]}", None),
        ("{mode: all_of, roles: [solo, solo2]}", "all_of needs 2 different people"),
        ("{mode: all_of, roles: [approvers, empty]}", "all_of needs one approver from empty"),
        ("{mode: any_of, required: 2, roles: [solo]}", None),
    ],
)
def test_unsatisfiable_quorum_is_refused_at_load(approvals: str, problem: str | None) -> None:
    text = (
        MINIMAL.replace(
            "roles:\n",
            "roles:\n  solo:\n    members: [bob@example.com]\n"
            "  solo2:\n    members: [bob@example.com]\n  empty: {}\n",
        )
        + f"    approvals: {approvals}\n"
    )
    if problem is None:
        parse_config(text)
        return
    found = errors(text)
    assert len(found) == 1
    assert found[0].startswith("f.yaml:15: policies[0].approvals: policy 'all': ")
    assert problem in found[0]
    # `signoff check` loads it anyway, to show the control map.
    config = parse_config(text, check_quorum=False)
    assert problem in config.quorum_problems["all"]


def test_repeat_unrolls_and_drops_the_final_wait() -> None:
    text = MINIMAL + (
        "    escalation: loud\n"
        "escalations:\n"
        "  loud:\n"
        "    - wait: PT10M\n"
        "    - notify: on_shift\n"
        "    - wait: PT5M\n"
        "    - repeat: 2\n"
    )
    chain = parse_config(text).chains["loud"]
    assert [next(iter(s)) for s in chain] == ["wait", "notify", "wait"] * 2 + ["wait", "notify"]
    assert errors(text.replace("repeat: 2", "repeat: 6"))[0].startswith(
        "f.yaml:16: escalations.loud[3].repeat: Input should be less than or equal to 5"
    )


def test_naive_times_are_local_to_the_person_or_schedule() -> None:
    text = MINIMAL.replace(
        "  - email: alice@example.com\n",
        "  - email: alice@example.com\n"
        "    timezone: America/New_York\n"
        "    out_of_office: [{from: 2026-07-01T00:00, until: 2026-07-02T00:00, "
        "delegate: bob@example.com}]\n",
    )
    absence = parse_config(text).people["alice@example.com"].absences[0]
    assert absence.start == datetime(2026, 7, 1, 4, tzinfo=UTC)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bin.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml").default.body.auto == "reject"
