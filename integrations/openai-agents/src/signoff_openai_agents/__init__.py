"""signoff for the OpenAI Agents SDK.

`gate(tool, client=...)` puts a signoff approval on a function tool, either waiting inside a tool
input guardrail (`mode="wait"`) or pausing the run durably (`mode="durable"`, with `pause`,
`resume` and `receiver` to continue it from the signed callback).
"""

try:
    import agents as _agents  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError as exc:  # pragma: no cover - exercised only without the SDK
    raise ImportError(
        "signoff-openai-agents needs the OpenAI Agents SDK: pip install 'signoff-openai-agents' "
        "(it depends on openai-agents)"
    ) from exc

from signoff_openai_agents.durable import Resumed, RunStore, SqliteRunStore, pause, receiver, resume
from signoff_openai_agents.gate import approval_guardrail, gate
from signoff_openai_agents.requests import GateOptions

__all__ = [
    "GateOptions",
    "Resumed",
    "RunStore",
    "SqliteRunStore",
    "approval_guardrail",
    "gate",
    "pause",
    "receiver",
    "resume",
]
