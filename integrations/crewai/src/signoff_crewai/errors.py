"""The adapter's own errors, under core's `signoff.SignoffError`.

SignoffError
└── CrewAIError              something the CrewAI adapter refuses to do
    ├── OutputRejected       a task guardrail (on_reject="stop") was not approved
    └── NotASignoffDecision  a flow's last human feedback did not come from signoff
"""

from __future__ import annotations

from signoff import Request, SignoffError

__all__ = ["CrewAIError", "NotASignoffDecision", "OutputRejected"]


class CrewAIError(SignoffError):
    """Root of the CrewAI adapter's errors."""


class OutputRejected(CrewAIError):
    """A task's output was not approved and the guardrail was set to stop the crew.

    `request` is the signoff request that was decided (None when signoff was unreachable).
    """

    def __init__(self, message: str, *, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class NotASignoffDecision(CrewAIError):
    """The flow's last human feedback is not a decision the signoff provider delivered."""
