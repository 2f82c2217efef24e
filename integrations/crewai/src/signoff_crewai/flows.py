"""Flows: a `@human_feedback` provider that asks signoff and pauses the flow.

    review = SignoffFeedbackProvider(action="payments.release", route="finance-approver",
                                     callback_url="https://agents.example.com/signoff")

    class InvoiceFlow(Flow[dict[str, Any]]):
        @start()
        @human_feedback(message="Release this payment?", provider=review)   # no emit=
        def propose(self) -> dict[str, Any]:
            return {"invoice_id": "INV-1042", "amount": "12500.00", ...}

        @router(propose)
        def decided(self) -> str:
            return decision_of(self).route          # "approved" | "rejected" | ...

        @listen("approved")
        def release(self) -> None:
            pay(**decision_of(self).arguments)       # the reviewer's edit, if any
            review.report_outcome(self, "executed")

The provider creates the request (action arguments = the method's output, a mapping) and
raises CrewAI's `HumanFeedbackPending`: `kickoff()` returns it and CrewAI persists the flow.
`resume(event, InvoiceFlow, persistence)` (see `signoff_crewai.durable`) continues it from the
verified callback with the decision as the feedback text, a JSON document `decision_of` reads.
Routing is deterministic on the verdict: do not pass `emit=` to `@human_feedback` (CrewAI would
ask an LLM to classify the feedback); route with `@router` on `decision_of(self).route`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from crewai.flow.async_feedback import HumanFeedbackPending, PendingFeedbackContext
from crewai.flow.runtime import Flow

from signoff import Client, OutcomeStatus, Request, Risk
from signoff_crewai.errors import NotASignoffDecision
from signoff_crewai.requests import (
    RequestOptions,
    Scope,
    build_request,
    is_approved,
    jsonable,
    rejection_text,
    report_outcome,
)

__all__ = ["REQUEST_ID_KEY", "FlowDecision", "SignoffFeedbackProvider", "decision_of"]

REQUEST_ID_KEY = "signoff_request_id"
"""Where the pending context's metadata names the request the flow waits for."""
_FEEDBACK_KEY = "signoff"


@dataclass(frozen=True, kw_only=True)
class FlowDecision:
    """A signoff decision as a paused flow receives it (the flow's human feedback).

    `route` is `approved` for approve, edit and an approving timeout outcome, and otherwise the
    request's status: `rejected`, `responded`, `expired` or `cancelled`. `arguments` are the
    arguments to act on (the reviewer's edit if any); `message` is what to tell the agent when
    the action may not run.
    """

    request_id: str
    status: str
    verdict: str | None
    approved: bool
    route: str
    arguments: dict[str, Any] = field(default_factory=dict[str, Any])
    comment: str | None = None
    decided_by: str | None = None
    message: str = ""

    @classmethod
    def from_request(cls, request: Request) -> FlowDecision:
        """The decision recorded on a closed request."""
        final = request.final_decision
        approved = is_approved(request)
        return cls(
            request_id=request.id,
            status=request.status.value,
            verdict=final.verdict.value if final else None,
            approved=approved,
            route="approved" if approved else request.status.value,
            arguments=dict(request.effective_arguments),
            comment=final.comment if final else None,
            decided_by=final.decided_by.user if final else None,
            message="" if approved else rejection_text(request),
        )

    def to_feedback(self) -> str:
        """The decision as the feedback text handed to `Flow.resume`."""
        return json.dumps({_FEEDBACK_KEY: self.__dict__}, sort_keys=True)

    @classmethod
    def from_feedback(cls, text: str) -> FlowDecision:
        """Read a decision back from feedback text; `NotASignoffDecision` if it is not one."""
        try:
            data = json.loads(text)
            fields = cast(dict[str, Any], data[_FEEDBACK_KEY])
            return cls(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise NotASignoffDecision(
                "the flow's human feedback is not a signoff decision"
            ) from exc


def decision_of(flow: Flow[Any]) -> FlowDecision:
    """The signoff decision the flow was resumed with (its last human feedback)."""
    feedback = flow.last_human_feedback
    if feedback is None:
        raise NotASignoffDecision("the flow has no human feedback yet")
    return FlowDecision.from_feedback(feedback.feedback)


class SignoffFeedbackProvider:
    """A CrewAI `HumanFeedbackProvider` that puts the reviewed output up for signoff approval.

    `arguments` turns the method's output into the action's arguments (default: the output
    itself when it is a mapping, else `{"output": <text>}`). `client` defaults to a
    `signoff.Client()` from `SIGNOFF_URL` / `SIGNOFF_API_KEY`, opened per request. A policy that
    decides at once (auto-approve / auto-reject) answers without pausing the flow.
    """

    def __init__(
        self,
        *,
        action: str,
        client: Client | None = None,
        arguments: Callable[[Any], Mapping[str, Any]] | None = None,
        business_object: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        summary: Callable[[Mapping[str, Any]], str] | None = None,
        route: str | None = None,
        sla: str | None = None,
        risk: Risk | None = None,
        callback_url: str | None = None,
    ) -> None:
        self.client = client
        self.arguments = arguments
        self.options = RequestOptions(
            action=action, business_object=business_object, summary=summary, route=route,
            sla=sla, risk=risk, callback_url=callback_url,
        )  # fmt: skip

    @contextmanager
    def _client(self) -> Generator[Client]:
        if self.client is not None:
            yield self.client
            return
        with Client() as client:
            yield client

    def _arguments(self, output: Any) -> dict[str, Any]:
        if self.arguments is not None:
            return dict(self.arguments(output))
        value = jsonable(output)
        if isinstance(value, dict):
            return cast(dict[str, Any], value)
        return {"output": value if isinstance(value, str) else json.dumps(value)}

    def request_feedback(self, context: PendingFeedbackContext, flow: Flow[Any]) -> str:
        """Create the request; pause the flow (raise `HumanFeedbackPending`) until decided."""
        arguments = self._arguments(context.method_output)
        scope = Scope(flow_id=context.flow_id, flow_method=context.method_name)
        payload = build_request(
            kind="flow",
            name=self.options.action or context.method_name,
            arguments=arguments,
            scope=scope,
            options=self.options,
            default_object={"type": "crewai_flow", "id": context.flow_id},
            # One request per arrival at the review step (a flow may loop back to it).
            extra_key=(context.requested_at.isoformat(),),
            correlation={"flow_class": context.flow_class[-200:]},
        )
        with self._client() as client:
            request = client.create_request(payload)
            if request.status.is_terminal:  # a policy decided at once: no pause
                decision = FlowDecision.from_request(request)
                if not decision.approved:
                    report_outcome(client, request.id, OutcomeStatus.SKIPPED, "not approved")
                return decision.to_feedback()
        context.metadata = {**context.metadata, REQUEST_ID_KEY: request.id}
        raise HumanFeedbackPending(
            context=context,
            callback_info={REQUEST_ID_KEY: request.id},
            message=f"flow {context.flow_id!r} waits for signoff request {request.id}",
        )

    def report_outcome(
        self, flow: Flow[Any], status: OutcomeStatus | str, *, detail: str | None = None
    ) -> None:
        """Report what the flow did with its last decision (`executed`, `failed`, `skipped`)."""
        decision = decision_of(flow)
        with self._client() as client:
            report_outcome(client, decision.request_id, OutcomeStatus(status), detail)
