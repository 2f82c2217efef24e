"""`signoff.yaml`: the schema, the loader, and the checks that run before a server trusts it.

`load_config(path)` reads the file, validates it against the pydantic schema below, checks the
references between its parts (people, roles, chains, policies), compiles the CEL conditions and
the schedules, and returns a `PolicyConfig`. Every problem is reported as `file:line: field:
message`, all of them at once, in a `ConfigError`; nothing in a user's file raises anything else.

With `check_quorum=True` (what the server does) a policy whose quorum the role's members cannot
meet is refused too; `signoff check` loads without it and reports such policies in the control map.

The version of a config is the SHA-256 of the file's bytes; every routed request records it.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)

from signoff.durations import Duration, parse_duration
from signoff.models import (
    ApprovalMode,
    Approvals,
    CommentRequired,
    Risk,
    TimeoutOutcome,
    Verdict,
)
from signoff_server.policy import shifts
from signoff_server.policy.cel import Condition, ConditionError
from signoff_server.policy.yamlfile import Loc, YamlDocument, YamlError, format_loc, parse_yaml

__all__ = [
    "MAX_REPEAT",
    "Absence",
    "CompiledPolicy",
    "ConfigError",
    "ConfigIssue",
    "PersonSpec",
    "PolicyConfig",
    "PolicyFile",
    "RoleSpec",
    "chain_waits",
    "load_config",
    "parse_config",
    "quorum_problem",
]

MAX_REPEAT = 5
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# --- field types ----------------------------------------------------------------------------


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. 'Europe/Berlin')") from None
    return name


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_time(value: str) -> str:
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00", value):
        raise ValueError(f"{value!r} is not a local time such as '09:00' or '24:00'")
    return value


def _check_turn(value: str) -> str:
    shifts.parse_turn(value)
    return value


Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    ),
]
RoleName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ZoneName = Annotated[str, AfterValidator(_check_zone)]
LocalTime = Annotated[str, AfterValidator(_check_time)]
Globs = Annotated[list[Name], BeforeValidator(_as_list), Field(min_length=1)]
TurnLength = Annotated[str, AfterValidator(_check_turn)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- people ----------------------------------------------------------------------------------


class OutOfOffice(_Strict):
    """Away from `from` until `until` (naive times are in the person's zone); `delegate`
    receives their routing and notifications meanwhile."""

    start: datetime = Field(alias="from")
    until: datetime
    delegate: Email


class Person(_Strict):
    """Someone who can be routed to: email (their identity), name, zone, Slack id, absences."""

    email: Email
    name: Name | None = None
    timezone: ZoneName | None = None
    slack: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,32}$")] | None = None
    out_of_office: list[OutOfOffice] = Field(default_factory=list[OutOfOffice])


# --- roles and schedules -----------------------------------------------------------------------


class WindowModel(_Strict):
    """Local hours on some weekdays; `to` at or before `from` runs past midnight."""

    days: Annotated[list[Weekday], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: list(_WEEKDAYS)
    )
    start: LocalTime = Field(alias="from")
    to: LocalTime


Group = Annotated[list[Email], BeforeValidator(_as_list), Field(min_length=1)]


class Layer(_Strict):
    """A rotation: groups taking turns from `anchor`, every `turn` (PT12H, P1D, P1W)."""

    name: Name
    anchor: datetime
    turn: TurnLength
    groups: list[Group] = Field(min_length=1)
    windows: list[WindowModel] = Field(default_factory=list[WindowModel])
    priority: int = 0
    until: datetime | None = None


class OverrideModel(_Strict):
    """`people` are on shift from `from` until `until`, whatever the layers say."""

    start: datetime = Field(alias="from")
    until: datetime
    people: Annotated[list[Email], BeforeValidator(_as_list), Field(min_length=1)]
    note: str | None = None


class ScheduleModel(_Strict):
    """Who of a role is on shift: layers (rotations) and overrides, in one time zone."""

    timezone: ZoneName | None = None
    layers: list[Layer] = Field(default_factory=list[Layer])
    overrides: list[OverrideModel] = Field(default_factory=list[OverrideModel])


class Fallback(_Strict):
    """When nobody is on shift, these people are."""

    fallback: Annotated[list[Email], BeforeValidator(_as_list), Field(min_length=1)]


def _gap_policy_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "mode"
    if isinstance(value, dict):
        return "fallback"
    return None


GapPolicy = Annotated[
    Annotated[Literal["notify_all", "escalate", "fail"], Tag("mode")]
    | Annotated[Fallback, Tag("fallback")],
    Discriminator(
        _gap_policy_kind,
        custom_error_type="gap_policy",
        custom_error_message="must be notify_all, escalate, fail or {fallback: [people]}",
    ),
]


class Role(_Strict):
    """A role: who holds it, who of them is on shift when, and what a gap means."""

    description: str | None = None
    members: Annotated[list[Email], BeforeValidator(_as_list)] = Field(default_factory=list[str])
    schedule: ScheduleModel | None = None
    gap_policy: GapPolicy = "notify_all"


# --- escalation chains -----------------------------------------------------------------------


class NotifyTarget(_Strict):
    """Exactly one of: the on-shift people of a role (the current route when empty), every
    member of a role (the current route when empty), or named people."""

    on_shift: RoleName | None = None
    role: RoleName | None = None
    people: list[Email] | None = None
    kind: Literal["on_shift", "role", "people"] = "on_shift"

    @model_validator(mode="before")
    @classmethod
    def _one_target(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in ("on_shift", "role"):
                raise ValueError("notify: use on_shift, role, {on_shift: R}, {role: R} or {people}")
            return {"kind": value}
        if isinstance(value, dict):
            data = cast(dict[str, Any], value)
            keys = [k for k in ("on_shift", "role", "people") if k in data]
            if len(keys) != 1:
                raise ValueError("notify names exactly one of on_shift, role or people")
            return {**data, "kind": keys[0]}
        return value


class NotifyStep(_Strict):
    """Notify people now."""

    notify: NotifyTarget


class WaitStep(_Strict):
    """Wait this long before the next step."""

    wait: Duration


class EscalateStep(_Strict):
    """Move the request's route to this role and notify its on-shift people."""

    escalate_to: RoleName


class RepeatStep(_Strict):
    """Run the steps before it again, this many more times (the last step; at most 5)."""

    repeat: int = Field(ge=1, le=MAX_REPEAT)


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("notify", "wait", "escalate_to", "repeat"):
            if key in value:
                return key
    return None


Step = Annotated[
    Annotated[NotifyStep, Tag("notify")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[EscalateStep, Tag("escalate_to")]
    | Annotated[RepeatStep, Tag("repeat")],
    Discriminator(
        _step_kind,
        custom_error_type="step",
        custom_error_message="a step is one of notify, wait, escalate_to or repeat",
    ),
]


# --- policies ----------------------------------------------------------------------------------


class Match(_Strict):
    """What a policy applies to; every given field must match (globs for names)."""

    action: Globs | None = None
    object_type: Globs | None = None
    agent: Globs | None = None
    risk: Annotated[list[Risk], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    condition: Annotated[str, StringConstraints(min_length=1, max_length=4000)] | None = None


class PolicyBody(_Strict):
    """What a policy sets. Each field can only tighten what the caller asked."""

    description: str | None = None
    route: RoleName | None = None
    sla: Duration | None = None
    on_timeout: TimeoutOutcome | None = None
    escalation: Name | None = None
    approvals: Approvals | None = None
    allowed: list[Verdict] | None = None
    comment_required: CommentRequired | None = None
    risk: Risk | None = None
    auto: Literal["approve", "reject"] | None = None


class Policy(PolicyBody):
    """A named policy with its match; the first policy that matches a request applies."""

    name: Name
    match: Match = Field(default_factory=Match)


class PolicyFile(_Strict):
    """The whole `signoff.yaml`."""

    version: Literal[1] = 1
    timezone: ZoneName = "UTC"
    people: list[Person] = Field(default_factory=list[Person])
    roles: dict[RoleName, Role] = Field(default_factory=dict[str, Role])
    escalations: dict[Name, list[Step]] = Field(default_factory=dict[str, list[Step]])
    policies: list[Policy] = Field(default_factory=list[Policy])
    default: PolicyBody | None = None


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in the file: where (line, field) and what."""

    line: int | None
    field: str
    message: str

    def render(self, path: str) -> str:
        """`path:line: field: message`."""
        where = f"{path}:{self.line}" if self.line is not None else path
        return f"{where}: {self.field}: {self.message}"


class ConfigError(ValueError):
    """The policy file cannot be used; `issues` says every reason, each with file and line."""

    def __init__(self, path: str, issues: Sequence[ConfigIssue]) -> None:
        self.path = path
        self.issues = list(issues)
        super().__init__("\n".join(issue.render(path) for issue in self.issues))


class _Issues:
    def __init__(self, document: YamlDocument) -> None:
        self.document = document
        self.items: list[ConfigIssue] = []

    def add(self, loc: Loc, message: str) -> None:
        line, _ = self.document.line_of(loc)
        issue = ConfigIssue(line, format_loc(loc), message)
        if issue not in self.items:
            self.items.append(issue)


def _pydantic_issues(exc: ValidationError, document: YamlDocument) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[tuple[int | None, str]] = set()
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        line, found = document.line_of(loc)
        shown = found
        if error["type"] in ("missing", "extra_forbidden") and len(loc) > len(found):
            shown = (*found, loc[len(found)])  # name the field that is missing or unknown
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        message = message.removeprefix("Value error, ")
        key = (line, format_loc(shown))
        if key in seen:
            continue  # one message per field; unions would otherwise repeat themselves
        seen.add(key)
        issues.append(ConfigIssue(line, format_loc(shown), message))
    return issues


# --- the compiled config ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Absence:
    """An out-of-office window, `[start, end)`, with the person standing in."""

    start: datetime
    end: datetime
    delegate: str


@dataclass(frozen=True, slots=True)
class PersonSpec:
    """A person of the file."""

    email: str
    name: str | None
    timezone: str | None
    slack: str | None
    absences: tuple[Absence, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role of the file, its schedule compiled."""

    name: str
    members: tuple[str, ...]
    schedule: shifts.Schedule | None
    gap_policy: str
    """`notify_all`, `escalate`, `fail` or `fallback`."""
    fallback: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy ready to match: its settings, its compiled condition, where it is written."""

    name: str
    body: PolicyBody
    match: Match | None
    condition: Condition | None
    line: int | None
    index: int | None
    """Position in `policies`, or None for the default."""

    @property
    def rule(self) -> str:
        """How the policy is written, for the record: its place and its match."""
        place = f"policies[{self.index}]" if self.index is not None else "default"
        where = f" (line {self.line})" if self.line is not None else ""
        if self.match is None:
            return place + where
        parts: list[str] = []
        for name in ("action", "object_type", "agent"):
            globs: list[str] | None = getattr(self.match, name)
            if globs:
                parts.append(f"{name} {'|'.join(globs)}")
        if self.match.risk:
            parts.append(f"risk {'|'.join(r.value for r in self.match.risk)}")
        if self.match.condition:
            parts.append(f"if {self.match.condition}")
        return f"{place}{where}: " + ("; ".join(parts) or "every request")


@dataclass(frozen=True)
class PolicyConfig:
    """A validated policy file, ready for routing. Immutable; reload to change it."""

    path: str
    version: str
    """SHA-256 (hex) of the file's bytes."""
    file: PolicyFile
    document: YamlDocument
    people: dict[str, PersonSpec]
    roles: dict[str, RoleSpec]
    chains: dict[str, tuple[dict[str, Any], ...]]
    """Each escalation chain with `repeat` unrolled: notify / wait / escalate_to steps."""
    policies: tuple[CompiledPolicy, ...]
    default: CompiledPolicy
    quorum_problems: dict[str, str] = field(default_factory=dict[str, str])
    """Policy name -> why its quorum cannot be met (empty when the server accepted the file)."""

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc` in the file (or of its nearest written parent)."""
        return self.document.line_of(loc)[0]

    def roles_of(self, email: str) -> list[str]:
        """The roles the file gives `email`, in file order."""
        return [role.name for role in self.roles.values() if email in role.members]


# --- loading ------------------------------------------------------------------------------------


def load_config(path: str | Path, *, check_quorum: bool = True) -> PolicyConfig:
    """Read and validate the policy file at `path`; ConfigError names every problem."""
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(shown, [ConfigIssue(None, "(file)", exc.strerror or str(exc))]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(shown, [ConfigIssue(None, "(file)", "not UTF-8 text")]) from None
    return parse_config(text, path=shown, check_quorum=check_quorum, raw=raw)


def parse_config(
    text: str, *, path: str = "signoff.yaml", check_quorum: bool = True, raw: bytes | None = None
) -> PolicyConfig:
    """Validate policy-file text (named `path` in messages); ConfigError on any problem."""
    try:
        document = parse_yaml(text)
    except YamlError as exc:
        raise ConfigError(path, [ConfigIssue(exc.line, "(file)", exc.message)]) from None
    value: Any = document.value
    if value is None:
        value, document = {}, YamlDocument({}, {(): 1})
    if not isinstance(value, dict):
        raise ConfigError(path, [ConfigIssue(1, "(top level)", "must be a mapping")])
    try:
        model = PolicyFile.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(path, _pydantic_issues(exc, document)) from None
    issues = _Issues(document)
    config = _compile(model, document, issues, path, raw or text.encode())
    if check_quorum:
        for name, problem in config.quorum_problems.items():
            index = next((i for i, p in enumerate(model.policies) if p.name == name), None)
            loc: Loc = ("policies", index, "approvals") if index is not None else ("default",)
            issues.add(loc, f"policy {name!r}: {problem}")
    if issues.items:
        raise ConfigError(path, sorted(issues.items, key=lambda i: i.line or 0))
    return config


def _compile(
    model: PolicyFile, document: YamlDocument, issues: _Issues, path: str, raw: bytes
) -> PolicyConfig:
    people = _people(model, issues)
    roles = _roles(model, people, issues)
    _check_delegates(model, roles, issues)
    chains = _chains(model, roles, people, issues)
    policies = tuple(
        _policy(p, i, model, roles, chains, document, issues) for i, p in enumerate(model.policies)
    )
    default = _default(model, roles, chains, document, issues)
    problems: dict[str, str] = {}
    for policy in (*policies, default):
        problem = _policy_quorum_problem(policy.body, roles)
        if problem is not None:
            problems[policy.name] = problem
    return PolicyConfig(
        path=path,
        version=hashlib.sha256(raw).hexdigest(),
        file=model,
        document=document,
        people=people,
        roles=roles,
        chains=chains,
        policies=policies,
        default=default,
        quorum_problems=problems,
    )


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    if value.tzinfo is None:
        return shifts.local_to_utc(value, zone)
    return value.astimezone(UTC)


def _people(model: PolicyFile, issues: _Issues) -> dict[str, PersonSpec]:
    people: dict[str, PersonSpec] = {}
    for index, person in enumerate(model.people):
        if person.email in people:
            issues.add(("people", index, "email"), f"{person.email} is listed twice")
            continue
        zone = ZoneInfo(person.timezone or model.timezone)
        absences: list[Absence] = []
        for n, away in enumerate(person.out_of_office):
            loc: Loc = ("people", index, "out_of_office", n)
            start, end = _aware(away.start, zone), _aware(away.until, zone)
            if end <= start:
                issues.add((*loc, "until"), "must be after 'from'")
            if away.delegate == person.email:
                issues.add((*loc, "delegate"), "a person cannot delegate to themselves")
            absences.append(Absence(start, end, away.delegate))
        people[person.email] = PersonSpec(
            person.email, person.name, person.timezone, person.slack, tuple(absences)
        )
    for index, person in enumerate(model.people):
        for n, away in enumerate(person.out_of_office):
            if away.delegate not in people:
                issues.add(
                    ("people", index, "out_of_office", n, "delegate"),
                    f"{away.delegate} is not in people",
                )
    return people


def _known(
    emails: Iterable[str], allowed: Iterable[str], loc: Loc, what: str, issues: _Issues
) -> None:
    allowed_set = set(allowed)
    for email in emails:
        if email not in allowed_set:
            issues.add(loc, f"{email} is not {what}")


def _roles(
    model: PolicyFile, people: dict[str, PersonSpec], issues: _Issues
) -> dict[str, RoleSpec]:
    roles: dict[str, RoleSpec] = {}
    for name, role in model.roles.items():
        loc: Loc = ("roles", name)
        members = tuple(dict.fromkeys(role.members))
        _known(members, people, (*loc, "members"), "in people", issues)
        fallback: tuple[str, ...] = ()
        mode: str
        if isinstance(role.gap_policy, Fallback):
            mode, fallback = "fallback", tuple(role.gap_policy.fallback)
            _known(
                fallback, members, (*loc, "gap_policy", "fallback"), f"a member of {name}", issues
            )
        else:
            mode = role.gap_policy
        schedule = None
        if role.schedule is not None:
            schedule = _schedule(role.schedule, model.timezone, members, (*loc, "schedule"), issues)
        elif mode in ("escalate", "fail", "fallback"):
            issues.add((*loc, "gap_policy"), "only a role with a schedule can have gaps")
        roles[name] = RoleSpec(name, members, schedule, mode, fallback)
    return roles


def _schedule(
    model: ScheduleModel, default_zone: str, members: tuple[str, ...], loc: Loc, issues: _Issues
) -> shifts.Schedule:
    zone = ZoneInfo(model.timezone or default_zone)
    rotations: list[shifts.Rotation] = []
    for index, layer in enumerate(model.layers):
        at: Loc = (*loc, "layers", index)
        for n, group in enumerate(layer.groups):
            _known(group, members, (*at, "groups", n), "a member of the role", issues)
        anchor = layer.anchor
        if anchor.tzinfo is not None:
            anchor = anchor.astimezone(zone).replace(tzinfo=None)
        windows: list[shifts.Window] = []
        for n, window in enumerate(layer.windows):
            start, end = _minutes(window.start), _minutes(window.to)
            if start == end or start == 24 * 60:
                issues.add((*at, "windows", n), "'from' and 'to' must differ, 'from' before 24:00")
                continue
            days = frozenset(_WEEKDAYS.index(d) for d in window.days)
            windows.append(shifts.Window(days, start, end))
        until = _aware(layer.until, zone) if layer.until is not None else None
        rotations.append(
            shifts.Rotation(
                name=layer.name,
                anchor=anchor,
                turn=shifts.parse_turn(layer.turn),
                groups=tuple(tuple(dict.fromkeys(g)) for g in layer.groups),
                windows=tuple(windows),
                priority=layer.priority,
                until=until,
            )
        )
    overrides: list[shifts.Override] = []
    for index, override in enumerate(model.overrides):
        at = (*loc, "overrides", index)
        _known(override.people, members, (*at, "people"), "a member of the role", issues)
        start, end = _aware(override.start, zone), _aware(override.until, zone)
        if end <= start:
            issues.add((*at, "until"), "must be after 'from'")
            continue
        overrides.append(shifts.Override(start, end, tuple(dict.fromkeys(override.people))))
    return shifts.Schedule(zone, tuple(rotations), tuple(overrides))


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _check_delegates(model: PolicyFile, roles: dict[str, RoleSpec], issues: _Issues) -> None:
    """A delegate must hold every role of the person they stand in for, or they could not
    decide what is routed to them."""
    for index, person in enumerate(model.people):
        held = [r.name for r in roles.values() if person.email in r.members and r.name != "admin"]
        for n, away in enumerate(person.out_of_office):
            missing = [r for r in held if away.delegate not in roles[r].members]
            if missing:
                issues.add(
                    ("people", index, "out_of_office", n, "delegate"),
                    f"{away.delegate} cannot stand in for {person.email}: "
                    f"does not hold {', '.join(missing)}",
                )


def _chains(
    model: PolicyFile,
    roles: dict[str, RoleSpec],
    people: dict[str, PersonSpec],
    issues: _Issues,
) -> dict[str, tuple[dict[str, Any], ...]]:
    chains: dict[str, tuple[dict[str, Any], ...]] = {}
    for name, steps in model.escalations.items():
        loc: Loc = ("escalations", name)
        flat: list[dict[str, Any]] = []
        repeat = 0
        for index, step in enumerate(steps):
            at: Loc = (*loc, index)
            match step:
                case RepeatStep():
                    if index != len(steps) - 1:
                        issues.add(at, "repeat must be the last step")
                    repeat = step.repeat
                case WaitStep():
                    flat.append({"wait": step.wait})
                case EscalateStep():
                    if step.escalate_to not in roles:
                        issues.add((*at, "escalate_to"), f"no role {step.escalate_to!r} in roles")
                    flat.append({"escalate_to": step.escalate_to})
                case NotifyStep():
                    target = step.notify
                    role = target.on_shift if target.kind == "on_shift" else target.role
                    if role is not None and role not in roles:
                        issues.add((*at, "notify"), f"no role {role!r} in roles")
                    if target.people is not None:
                        _known(
                            target.people, people, (*at, "notify", "people"), "in people", issues
                        )
                    flat.append(
                        {"notify": target.kind, "role": role, "people": list(target.people or [])}
                    )
        if not flat:
            issues.add(loc, "a chain needs at least one step")
        elif "wait" in flat[-1] and not repeat:
            last = len(steps) - 1
            issues.add((*loc, last), "a chain cannot end with wait: nothing follows it")
        if repeat and not any("wait" in s for s in flat):
            issues.add(loc, "repeat needs a wait in the chain, or it would fire all at once")
        unrolled = list(itertools.chain.from_iterable([flat] * (repeat + 1)))
        while unrolled and "wait" in unrolled[-1]:
            unrolled.pop()  # the pause before a repetition that never comes
        chains[name] = tuple(unrolled)
    return chains


def _policy(
    policy: Policy,
    index: int,
    model: PolicyFile,
    roles: dict[str, RoleSpec],
    chains: dict[str, tuple[dict[str, Any], ...]],
    document: YamlDocument,
    issues: _Issues,
) -> CompiledPolicy:
    loc: Loc = ("policies", index)
    if any(p.name == policy.name for p in model.policies[:index]):
        issues.add((*loc, "name"), f"another policy is already named {policy.name!r}")
    if policy.name == "default":
        issues.add((*loc, "name"), "'default' is the name of the top-level default policy")
    _check_body(policy, loc, roles, chains, issues, is_default=False)
    condition = None
    if policy.match.condition is not None:
        try:
            condition = Condition(policy.match.condition)
        except ConditionError as exc:
            issues.add((*loc, "match", "condition"), f"not a valid CEL condition: {exc}")
    return CompiledPolicy(
        name=policy.name,
        body=policy,
        match=policy.match,
        condition=condition,
        line=document.line_of(loc)[0],
        index=index,
    )


_FAIL_CLOSED = PolicyBody(
    description="No policy matched and the file has no default: rejected (fail closed).",
    auto="reject",
)


def _default(
    model: PolicyFile,
    roles: dict[str, RoleSpec],
    chains: dict[str, tuple[dict[str, Any], ...]],
    document: YamlDocument,
    issues: _Issues,
) -> CompiledPolicy:
    body = model.default if model.default is not None else _FAIL_CLOSED
    if model.default is not None:
        _check_body(body, ("default",), roles, chains, issues, is_default=True)
    line = document.line_of(("default",))[0] if model.default is not None else None
    return CompiledPolicy("default", body, None, None, line, None)


_AUTO_EXCLUDES = ("route", "sla", "on_timeout", "escalation", "approvals", "allowed")


def _check_body(
    body: PolicyBody,
    loc: Loc,
    roles: dict[str, RoleSpec],
    chains: dict[str, tuple[dict[str, Any], ...]],
    issues: _Issues,
    *,
    is_default: bool,
) -> None:
    if body.auto is not None:
        for name in _AUTO_EXCLUDES:
            if getattr(body, name) is not None:
                issues.add(
                    (*loc, name), f"a policy with auto: {body.auto} decides at once: drop it"
                )
        if is_default and body.auto == "approve":
            issues.add((*loc, "auto"), "the default policy fails closed: it cannot auto-approve")
        return
    if body.route is None:
        issues.add(loc, "a policy needs a route (a role) unless it decides with auto")
    elif body.route not in roles:
        issues.add((*loc, "route"), f"no role {body.route!r} in roles")
    if body.escalation is not None and body.escalation not in chains:
        issues.add((*loc, "escalation"), f"no escalation chain {body.escalation!r}")
    if body.approvals is not None:
        for role in body.approvals.roles or []:
            if role not in roles:
                issues.add((*loc, "approvals", "roles"), f"no role {role!r} in roles")
    if body.allowed is not None and Verdict.REJECT not in body.allowed:
        issues.add((*loc, "allowed"), "must include 'reject': a reviewer can always refuse")


# --- quorum feasibility ----------------------------------------------------------------------


def _policy_quorum_problem(body: PolicyBody, roles: dict[str, RoleSpec]) -> str | None:
    if body.auto is not None or body.route is None or body.route not in roles:
        return None
    approvals = body.approvals or Approvals()
    if any(r not in roles for r in approvals.roles or []):
        return None  # reported as an unknown role already

    def members(role: str) -> Sequence[str]:
        return roles[role].members

    return quorum_problem(approvals, body.route, members)


def quorum_problem(
    approvals: Approvals, route: str, members_of: Callable[[str], Sequence[str]]
) -> str | None:
    """Why the members of the eligible roles cannot meet `approvals`, or None if they can.

    `threshold`/`any_of`/`single` need that many distinct people among the route's and the
    quorum roles' members; `all_of` needs a different person for each listed role (and at
    least `required` people in all).
    """
    listed: list[str] = list(approvals.roles or [])
    eligible = list(dict.fromkeys([route, *listed]))
    people = {p for role in eligible for p in members_of(role)}
    if approvals.mode is ApprovalMode.ALL_OF:
        wanted = list(dict.fromkeys(listed))
        for role in wanted:
            if not members_of(role):
                return f"all_of needs one approver from {role}, which has no members"
        if not _distinct_representatives({r: set(members_of(r)) for r in wanted}):
            return (
                f"all_of needs {len(wanted)} different people, one from each of "
                f"{', '.join(wanted)}; their members overlap too much"
            )
        if len(people) < approvals.required:
            return f"needs {approvals.required} distinct approvers; only {len(people)} exist"
        return None
    needed = 1 if approvals.mode is ApprovalMode.SINGLE else approvals.required
    if len(people) < needed:
        held = " or ".join(eligible)
        return f"needs {needed} distinct approvers from {held}; only {len(people)} hold it"
    return None


def _distinct_representatives(options: dict[str, set[str]]) -> bool:
    """Is there a different person for every role (a bipartite matching, Kuhn's algorithm)?"""
    chosen: dict[str, str] = {}  # person -> role

    def assign(role: str, seen: set[str]) -> bool:
        for person in sorted(options[role]):
            if person in seen:
                continue
            seen.add(person)
            if person not in chosen or assign(chosen[person], seen):
                chosen[person] = role
                return True
        return False

    return all(assign(role, set()) for role in options)


def chain_waits(chain: Sequence[dict[str, Any]]) -> timedelta:
    """The total waiting time of an unrolled chain (for the control map)."""
    return sum((parse_duration(s["wait"]) for s in chain if "wait" in s), timedelta(0))
