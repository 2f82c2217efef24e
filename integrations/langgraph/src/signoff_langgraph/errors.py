"""The LangGraph adapter's errors, rooted in the core's `signoff.SignoffError`.

    SignoffError
    └── LangGraphError               anything this adapter raises on its own
        ├── GateError                a gate node cannot do its job (no client, no thread id, ...)
        ├── ResumeRefused            a verified callback that must not resume anything
        │   ├── NotForLangGraph      its correlation names no LangGraph thread
        │   └── InterruptNotPending  its interrupt is not pending (any more) in the thread
        │       └── AlreadyAnswered  ...because this request's answer was already applied
        ├── NotPausedYet             the gated step is still running: deliver again later
        └── ResumeFailed             the resume ran, but the interrupt is still pending

Every refusal leaves the graph untouched: nothing is invoked, no checkpoint is written.
"""

from __future__ import annotations

from signoff.errors import SignoffError

__all__ = [
    "AlreadyAnswered",
    "GateError",
    "InterruptNotPending",
    "LangGraphError",
    "NotForLangGraph",
    "NotPausedYet",
    "ResumeFailed",
    "ResumeRefused",
]


class LangGraphError(SignoffError):
    """Root of the errors the LangGraph adapter raises itself."""


class GateError(LangGraphError):
    """A gate node cannot do its job: misconfigured, or run outside what it needs."""


class ResumeRefused(LangGraphError):
    """A (verified) callback that must not resume the graph. The graph was not touched."""

    def __init__(self, message: str, *, request_id: str, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.thread_id = thread_id


class NotForLangGraph(ResumeRefused):
    """The request was not made by this adapter: its correlation names no LangGraph thread."""


class InterruptNotPending(ResumeRefused):
    """No interrupt for this request is pending in the thread (answered, abandoned, replaced)."""


class AlreadyAnswered(InterruptNotPending):
    """This request's decision was already applied to its interrupt; it is never applied twice."""


class NotPausedYet(LangGraphError):
    """The gated step is still running and has not paused yet: deliver the callback again later.

    A reviewer can decide before the run that created the request has written its checkpoint.
    """

    def __init__(self, message: str, *, request_id: str, thread_id: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.thread_id = thread_id


class ResumeFailed(LangGraphError):
    """The graph was resumed, but the interrupt is still pending: the answer did not land."""
