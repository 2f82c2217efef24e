"""The wire model: what agents ask for, what reviewers decide, what the server records.

Input models (`RequestCreate`, `DecisionCreate`, `OutcomeReport`) are strict: unknown fields,
unknown enum values, empty action names, malformed durations and oversize payloads are refused
with the field named. Models the server returns ignore fields they do not know, so an older
client keeps working against a newer server.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from signoff.durations import Duration

__all__ = [
    "MAX_ARGUMENTS_BYTES",
    "MAX_CONTEXT_BYTES",
    "Action",
    "AgentRef",
    "ApprovalMode",
    "Approvals",
    "AuditEvent",
    "BusinessObject",
    "CallbackData",
    "CallbackEvent",
    "CallbackStatus",
    "CallbackTarget",
    "CommentRequired",
    "DecidedBy",
    "Decision",
    "DecisionCreate",
    "DecisionVia",
    "Outcome",
    "OutcomeReport",
    "OutcomeStatus",
    "Page",
    "PolicyRef",
    "Request",
    "RequestCreate",
    "Risk",
    "Route",
    "Status",
    "TimeoutOutcome",
    "Verdict",
]

MAX_ARGUMENTS_BYTES = 64 * 1024
"""Largest JSON encoding accepted for `action.arguments`, edited arguments or attributes."""
MAX_CONTEXT_BYTES = 256 * 1024
"""Largest JSON encoding accepted for the agent-reported `context`."""

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
]
ActionName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/@-]+$"
    ),
]
Text = Annotated[str, StringConstraints(max_length=4000)]


def _json_size(value: Any) -> int:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        # NaN and Infinity are not JSON: PostgreSQL refuses them, and so do other parsers.
        raise ValueError("holds NaN or Infinity, which JSON cannot carry") from None
    return len(text.encode())


def _limit(value: dict[str, JsonValue], limit: int) -> dict[str, JsonValue]:
    size = _json_size(value)
    if size > limit:
        raise ValueError(f"is {size} bytes as JSON; the limit is {limit} bytes")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Risk(StrEnum):
    """How much harm the action can do. A policy may raise it, never lower it."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for critical, for comparisons."""
        return list(Risk).index(self)


class Status(StrEnum):
    """Where a request stands. Everything but `pending` is terminal."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    RESPONDED = "responded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the request is closed and can take no further decision."""
        return self is not Status.PENDING


class Verdict(StrEnum):
    """What a reviewer can answer: approve, reject, approve with edited arguments, or respond."""

    APPROVE = "approve"
    REJECT = "reject"
    EDIT = "edit"
    RESPOND = "respond"


class TimeoutOutcome(StrEnum):
    """What happens when the SLA runs out with no decision. Fails closed by default."""

    REJECT = "reject"
    APPROVE = "approve"


class ApprovalMode(StrEnum):
    """How many approvals close a request: one, one per listed role, any listed role, or n."""

    SINGLE = "single"
    ALL_OF = "all_of"
    ANY_OF = "any_of"
    THRESHOLD = "threshold"


class CommentRequired(StrEnum):
    """When a decision must carry a comment."""

    NEVER = "never"
    ON_REJECT = "on_reject"
    ALWAYS = "always"


class DecisionVia(StrEnum):
    """The channel a decision came through."""

    WEB = "web"
    API = "api"
    SLACK = "slack"
    EMAIL = "email"
    CLI = "cli"
    POLICY = "policy"
    TIMEOUT = "timeout"


class OutcomeStatus(StrEnum):
    """What the agent did after the decision."""

    EXECUTED = "executed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CallbackStatus(StrEnum):
    """Delivery state of the signed callback of a closed request."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Action(_Input):
    """The exact tool call to be gated: approval binds to this name and these arguments."""

    name: ActionName
    arguments: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("arguments")
    @classmethod
    def _arguments_size(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return _limit(value, MAX_ARGUMENTS_BYTES)


class BusinessObject(_Input):
    """The business thing the action touches, e.g. `invoice INV-1042`."""

    type: Name
    id: Name
    url: AnyHttpUrl | None = None
    attributes: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _attributes_size(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return _limit(value, MAX_ARGUMENTS_BYTES)


class AgentRef(_Input):
    """The agent asking. The server sets `id` from the authenticated key; a body may omit it."""

    id: Name | None = None
    name: Name | None = None
    framework: Name | None = None


class Route(_Input):
    """Where the request goes: the role that owns the action."""

    role: Name


class Approvals(_Input):
    """Quorum settings: how many and whose approvals close the request as approved."""

    mode: ApprovalMode = ApprovalMode.SINGLE
    required: int = Field(default=1, ge=1, le=20)
    roles: list[Name] | None = None
    separation_of_duties: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Approvals:
        if self.mode is ApprovalMode.ALL_OF and not self.roles:
            raise ValueError("mode 'all_of' needs 'roles': one approval is required from each")
        if self.mode is ApprovalMode.SINGLE and self.required != 1:
            raise ValueError("mode 'single' takes exactly one approval; use 'threshold' for more")
        return self


class CallbackTarget(_Input):
    """Where the signed decision callback is posted."""

    url: AnyHttpUrl


Correlation = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ],
    Field(max_length=32),
]


class RequestCreate(_Input):
    """What an agent sends to ask for approval of one action."""

    action: Action
    business_object: BusinessObject
    summary: Text | None = None
    context: dict[str, JsonValue] = Field(default_factory=dict)
    agent: AgentRef = Field(default_factory=AgentRef)
    initiator: Name | None = None
    correlation: Correlation = Field(default_factory=dict)
    risk: Risk = Risk.MEDIUM
    route: Route | None = None
    sla: Duration | None = None
    on_timeout: TimeoutOutcome = TimeoutOutcome.REJECT
    approvals: Approvals = Field(default_factory=Approvals)
    allowed: list[Verdict] = Field(
        default_factory=lambda: [Verdict.APPROVE, Verdict.REJECT, Verdict.EDIT, Verdict.RESPOND],
        min_length=1,
    )
    comment_required: CommentRequired = CommentRequired.NEVER
    callback: CallbackTarget | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None

    @field_validator("context")
    @classmethod
    def _context_size(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return _limit(value, MAX_CONTEXT_BYTES)

    @field_validator("allowed")
    @classmethod
    def _allowed_unique(cls, value: list[Verdict]) -> list[Verdict]:
        if Verdict.REJECT not in value:
            raise ValueError("must include 'reject': a reviewer can always refuse")
        return list(dict.fromkeys(value))


class DecisionCreate(_Input):
    """A reviewer's answer: `edit` carries new arguments, `respond` its text as `comment`."""

    verdict: Verdict
    arguments: dict[str, JsonValue] | None = None
    comment: Text | None = None
    reason_code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @field_validator("arguments")
    @classmethod
    def _arguments_size(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        # A field validator, so an oversize edit is refused with `arguments` in the error's loc.
        return None if value is None else _limit(value, MAX_ARGUMENTS_BYTES)

    @model_validator(mode="after")
    def _consistent(self) -> DecisionCreate:
        if self.verdict is Verdict.EDIT:
            if self.arguments is None:
                raise ValueError("verdict 'edit' needs 'arguments': the corrected action arguments")
        elif self.arguments is not None:
            raise ValueError(
                f"'arguments' belong only to verdict 'edit', not {self.verdict.value!r}"
            )
        if self.verdict is Verdict.RESPOND and not (self.comment or "").strip():
            raise ValueError("verdict 'respond' needs 'comment': the instruction for the agent")
        return self


class OutcomeReport(_Input):
    """What the agent reports after acting (or not) on the decision."""

    status: OutcomeStatus
    detail: Text | None = None


class PolicyRef(_Output):
    """Which policy routed the request: its name, the rule that matched, the config version."""

    name: str
    rule: str | None = None
    version: str | None = None


class DecidedBy(_Output):
    """The person (or `policy` / `timeout`) who decided, and the role they decided in."""

    user: str
    role: str | None = None


class Decision(_Output):
    """One recorded decision. A quorum request holds several approvals before it closes."""

    id: str
    request_id: str
    verdict: Verdict
    arguments: dict[str, JsonValue] | None = None
    comment: str | None = None
    reason_code: str | None = None
    decided_by: DecidedBy
    via: DecisionVia
    at: datetime


class Outcome(_Output):
    """What the agent reported it did after the decision: the last entry of the timeline."""

    status: OutcomeStatus
    detail: str | None = None
    at: datetime


class Request(_Output):
    """A request as the server holds it: the agent's ask plus routing, decisions and state."""

    id: str
    status: Status
    created_at: datetime
    due_at: datetime | None = None
    closed_at: datetime | None = None
    action: Action
    business_object: BusinessObject
    summary: str | None = None
    context: dict[str, JsonValue] = Field(default_factory=dict)
    agent: AgentRef
    initiator: str | None = None
    correlation: dict[str, str] = Field(default_factory=dict)
    risk: Risk
    route: Route
    sla: str | None = None
    on_timeout: TimeoutOutcome
    approvals: Approvals
    allowed: list[Verdict]
    comment_required: CommentRequired
    callback: CallbackTarget | None = None
    callback_status: CallbackStatus | None = None
    idempotency_key: str | None = None
    policy: PolicyRef | None = None
    assignees: list[str] = Field(default_factory=list)
    escalation_level: int = 0
    decisions: list[Decision] = Field(default_factory=list[Decision])
    outcome: Outcome | None = None

    @property
    def final_decision(self) -> Decision | None:
        """The decision that closed the request, if it was closed by a decision."""
        if not self.status.is_terminal or not self.decisions:
            return None
        return self.decisions[-1]

    @property
    def effective_arguments(self) -> dict[str, JsonValue]:
        """The arguments to execute with: the reviewer's edit if any, else the original ones."""
        final = self.final_decision
        if final is not None and final.verdict is Verdict.EDIT and final.arguments is not None:
            return final.arguments
        return self.action.arguments


T = TypeVar("T")


class Page(_Output, Generic[T]):
    """One page of a cursor-paginated list; pass `next_cursor` back to get the next page."""

    items: list[T]
    next_cursor: str | None = None


class AuditEvent(_Output):
    """One entry of the tamper-evident timeline. `leaf_hash` is its Merkle leaf (hex)."""

    seq: int
    at: datetime
    type: str
    request_id: str | None = None
    actor: str
    data: dict[str, JsonValue] = Field(default_factory=dict)
    leaf_hash: str | None = None


class CallbackData(_Output):
    """The payload of a callback event: the full request with decisions and correlation."""

    request: Request


class CallbackEvent(_Output):
    """The body of a signed callback (Standard Webhooks), posted when a request closes."""

    type: Literal["request.decided", "request.expired", "request.cancelled"]
    id: str
    timestamp: datetime
    data: CallbackData
