"""signoff: approval gates for AI agents.

The core package: the wire models, `Client` / `AsyncClient` for the signoff API, and Standard
Webhooks verification of signed decision callbacks (`signoff.webhooks`, `signoff.receiver`).
"""

from signoff.client import AsyncClient, Client
from signoff.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    SignatureError,
    SignoffError,
    TimeoutError,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from signoff.models import (
    Action,
    AgentRef,
    ApprovalMode,
    Approvals,
    AuditEvent,
    BusinessObject,
    CallbackEvent,
    CallbackStatus,
    CallbackTarget,
    CommentRequired,
    Decision,
    DecisionCreate,
    DecisionVia,
    Outcome,
    OutcomeReport,
    OutcomeStatus,
    Page,
    Request,
    RequestCreate,
    Risk,
    Route,
    Status,
    TimeoutOutcome,
    Verdict,
)
from signoff.receiver import CallbackReceiver
from signoff.webhooks import Verifier

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AgentRef",
    "ApiError",
    "ApprovalMode",
    "Approvals",
    "AsyncClient",
    "AuditEvent",
    "BusinessObject",
    "CallbackEvent",
    "CallbackReceiver",
    "CallbackStatus",
    "CallbackTarget",
    "Client",
    "CommentRequired",
    "Conflict",
    "Decision",
    "DecisionCreate",
    "DecisionVia",
    "Forbidden",
    "NotFound",
    "Outcome",
    "OutcomeReport",
    "OutcomeStatus",
    "Page",
    "Request",
    "RequestCreate",
    "Risk",
    "Route",
    "ServerError",
    "SignatureError",
    "SignoffError",
    "Status",
    "TimeoutError",
    "TimeoutOutcome",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
    "Verdict",
    "Verifier",
    "__version__",
]
