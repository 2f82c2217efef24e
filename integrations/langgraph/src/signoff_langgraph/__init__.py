"""signoff for LangGraph: approval gates that pause on `interrupt()` and resume on a verified,
signed decision callback.

- `approval_node(...)`: a node that asks signoff to approve a business action before the next
  node, and routes on the decision; `gated_action(...)` wraps the node that then performs it.
- `gate_tools(tools, gated=...)`: a drop-in `ToolNode` in which calls of gated tools run only
  once approved (edited arguments after an edit; a readable `ToolMessage` after a rejection).
- `resume(graph, event, ...)` / `aresume`: answer the exact pending interrupt from a verified
  `signoff.CallbackEvent`; `resume_pending` catches a thread up from the server's word.
- `LangGraphReceiver`: core's `CallbackReceiver` (verify, deduplicate) that resumes, as ASGI.

See docs/langgraph.md.
"""

try:
    import langchain_core as _langchain_core  # noqa: F401  # pyright: ignore[reportUnusedImport]
    import langgraph as _langgraph  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError as exc:  # pragma: no cover - exercised only without LangGraph
    raise ImportError(
        "signoff-langgraph needs langgraph and langchain-core: pip install 'signoff-langgraph' "
        "(it depends on langgraph>=1.1.5 and langchain-core>=1.0)"
    ) from exc

from signoff_langgraph.errors import (
    AlreadyAnswered,
    GateError,
    InterruptNotPending,
    LangGraphError,
    NotForLangGraph,
    NotPausedYet,
    ResumeFailed,
    ResumeRefused,
)
from signoff_langgraph.gate import (
    ALL_DECISIONS,
    DEFAULT_WAIT_TIMEOUT,
    ToolGate,
    approval_node,
    gate_tools,
    gated_action,
)
from signoff_langgraph.payloads import PayloadFormat, SignoffDecision
from signoff_langgraph.receiver import Delivery, LangGraphReceiver, server_verifier
from signoff_langgraph.resume import Resumed, aresume, aresume_pending, resume, resume_pending

__version__ = "0.1.0"

__all__ = [
    "ALL_DECISIONS",
    "DEFAULT_WAIT_TIMEOUT",
    "AlreadyAnswered",
    "Delivery",
    "GateError",
    "InterruptNotPending",
    "LangGraphError",
    "LangGraphReceiver",
    "NotForLangGraph",
    "NotPausedYet",
    "PayloadFormat",
    "ResumeFailed",
    "ResumeRefused",
    "Resumed",
    "SignoffDecision",
    "ToolGate",
    "__version__",
    "approval_node",
    "aresume",
    "aresume_pending",
    "gate_tools",
    "gated_action",
    "resume",
    "resume_pending",
    "server_verifier",
]
