"""signoff for CrewAI: approvals where CrewAI expects them.

- `gated_tool(tool, client=...)`: a `BaseTool` proxy whose calls wait for a signoff decision;
  a rejection is a failure the agent can read, never an exception.
- `approval_guardrail(client=...)`: a task guardrail that sends the task's output for review;
  a rejection makes the agent redo the task, or stops the crew.
- `SignoffFeedbackProvider`: a `@human_feedback` provider that pauses a Flow until signoff
  decides; `resume` / `aresume` / `receiver` continue it from the verified, signed callback,
  once; `decision_of(flow)` routes on the verdict without any LLM.

The adapter changes nothing global in CrewAI (no hooks, listeners or settings). See
docs/crewai.md.
"""

try:
    import crewai as _crewai  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError as exc:  # pragma: no cover - exercised only without CrewAI
    raise ImportError(
        "signoff-crewai needs CrewAI: pip install 'signoff-crewai' (it depends on crewai>=1.15). "
        "CrewAI pins pydantic<2.13 and openai<3, so give it an environment of its own."
    ) from exc

from signoff_crewai.durable import FlowResumed, aresume, receiver, resume
from signoff_crewai.errors import CrewAIError, NotASignoffDecision, OutputRejected
from signoff_crewai.flows import FlowDecision, SignoffFeedbackProvider, decision_of
from signoff_crewai.gate import GatedTool, gated_tool
from signoff_crewai.guardrail import approval_guardrail
from signoff_crewai.requests import RequestOptions, Scope

__version__ = "0.1.0"

__all__ = [
    "CrewAIError",
    "FlowDecision",
    "FlowResumed",
    "GatedTool",
    "NotASignoffDecision",
    "OutputRejected",
    "RequestOptions",
    "Scope",
    "SignoffFeedbackProvider",
    "__version__",
    "approval_guardrail",
    "aresume",
    "decision_of",
    "gated_tool",
    "receiver",
    "resume",
]
