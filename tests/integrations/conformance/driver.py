"""The driver interface every framework adapter implements to run the conformance suite.

A driver runs its framework's agent for the reference scenario (DESIGN §12): the agent attempts
`payments.release` (one or two calls in one step), the adapter's gate creates the signoff
requests and pauses, and the adapter's receiver takes the callbacks the suite delivers. The
suite (`suite.py`) decides requests on a real signoff server, signs and delivers callbacks, and
checks what the agent did through the driver. Same idea as LangGraph's checkpoint-conformance
suite, which every checkpointer runs.

A driver that cannot support a scenario returns a reason from `skip_reason`, and the scenario is
skipped with that reason (never silently passed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdapterDriver", "Delivered", "GatedCall", "Paused", "RunView", "Setup"]


@dataclass(frozen=True)
class GatedCall:
    """One gated call the agent will make: `payments.release` with these arguments."""

    call_id: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class Setup:
    """What to start: the gated calls of one step, and request settings the suite needs."""

    calls: Sequence[GatedCall]
    sla: str | None = None
    """ISO-8601 SLA for the requests (the timeout scenario uses a short one)."""
    callback_url: str | None = None
    """Where the server should post the signed decision (None: the suite delivers itself)."""
    separate_process: bool = False
    """Pause in another OS process, which exits; `deliver` then resumes in this one."""


@dataclass(frozen=True)
class Paused:
    """A run paused at the gate: its id and the signoff requests it created, in call order."""

    run_id: str
    request_ids: Sequence[str]


@dataclass(frozen=True)
class Delivered:
    """The receiver's answer to one delivery: its HTTP status and outcome word."""

    status_code: int
    outcome: str
    """resumed | queued | duplicate | unverified | refused | retry | failed"""


@dataclass(frozen=True)
class RunView:
    """What the agent did so far, as the framework shows it."""

    executed: Sequence[Mapping[str, Any]]
    """Arguments of every `payments.release` that really ran, in order (duplicates count)."""
    told: Mapping[str, str]
    """call id → what the agent was told instead of a result (rejection, instruction, timeout)."""
    paused: bool
    """True while the run waits at a gate."""
    version: str
    """Changes whenever the run's persisted state changes ("the graph was not touched")."""
    extra: Mapping[str, Any] = field(default_factory=dict[str, Any])


class AdapterDriver(ABC):
    """Runs one framework's agent through its signoff adapter, for the conformance suite."""

    name: str = "adapter"

    def skip_reason(self, scenario: str) -> str | None:
        """Why this framework cannot run `scenario`, or None to run it."""
        return None

    @abstractmethod
    def start(self, setup: Setup) -> Paused:
        """Run the agent until it pauses at the gate; every gated call has made its request."""

    @abstractmethod
    def deliver(self, run: Paused, body: bytes, headers: Mapping[str, str]) -> Delivered:
        """Hand one callback delivery (raw body and headers) to the adapter's receiver."""

    @abstractmethod
    def view(self, run: Paused) -> RunView:
        """What the run did so far."""

    @abstractmethod
    def abandon(self, run: Paused) -> None:
        """Make the paused step stop waiting without any decision (an operator moved it on)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds (clients, files, processes)."""
