"""The reference scenario as a CrewAI Flow, for the flow tests, the conformance driver and the
process that pauses a flow elsewhere (`pause_flow.py`).

`propose` puts the payment up for approval (`@human_feedback` with the signoff provider, no
`emit=`), `decided` routes on the verdict, `release` pays with the approved (or edited)
arguments and reports `executed`, `explain` records what the agent is told instead. Every step
persists the flow's state, so a test reads what happened from the persistence alone.
"""

from __future__ import annotations

from typing import Any, cast

from crewai.flow import Flow, human_feedback, listen, or_, router, start
from crewai.flow.persistence import SQLiteFlowPersistence, persist
from tests.integrations.crewai.fakes import ReleasePayment

from signoff import Client
from signoff_crewai import SignoffFeedbackProvider, decision_of


def build_flow(
    persistence: SQLiteFlowPersistence,
    *,
    client: Client | None,
    callback_url: str | None = None,
    sla: str | None = None,
) -> type[Flow[dict[str, Any]]]:
    """The invoice flow class, its review step posting callbacks to `callback_url`."""
    review = SignoffFeedbackProvider(
        action="payments.release",
        client=client,
        route="finance-approver",
        sla=sla,
        callback_url=callback_url,
        business_object=lambda a: {
            "type": "invoice",
            "id": a["invoice_id"],
            "attributes": {"amount": a["amount"], "currency": a["currency"]},
        },
        summary=lambda a: f"Release {a['currency']} {a['amount']} for {a['invoice_id']}",
    )

    @persist(persistence)
    class InvoiceFlow(Flow[dict[str, Any]]):
        @start()
        @human_feedback(message="Release this payment?", provider=review)
        def propose(self) -> dict[str, Any]:
            return dict(self.state["payment"])

        @router(propose)
        def decided(self) -> str:
            return decision_of(self).route

        @listen("approved")
        def release(self) -> str:
            result = str(ReleasePayment().run(**decision_of(self).arguments))
            review.report_outcome(self, "executed")
            self.state["told"] = result
            return result

        @listen(or_("rejected", "responded", "expired", "cancelled"))
        def explain(self) -> str:
            self.state["told"] = decision_of(self).message
            return "Payment not released: " + self.state["told"]

    return cast(type[Flow[dict[str, Any]]], InvoiceFlow)  # @persist is typed loosely
