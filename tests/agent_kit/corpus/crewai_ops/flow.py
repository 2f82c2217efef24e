"""Payout approvals as a CrewAI Flow, and a nightly flow nobody reviews."""

import os

import psycopg
import stripe
from crewai.flow.flow import Flow, listen, router, start
from crewai.flow.human_feedback import human_feedback
from pydantic import BaseModel
from signoff_crewai import SignoffFeedbackProvider, decision_of
from slack_sdk import WebClient


class PayoutState(BaseModel):
    account: str = ""
    cents: int = 0
    requester: str = ""


class PayoutFlow(Flow[PayoutState]):
    @start()
    @human_feedback(
        message="Send this payout?",
        provider=SignoffFeedbackProvider(action="payouts.send", route="finance-approver"),
    )
    def propose(self) -> dict:
        return {"account": self.state.account, "cents": self.state.cents}

    @router(propose)
    def decide(self) -> str:
        return "approved" if decision_of(self).approved else "rejected"

    @listen("approved")
    def send_payout(self) -> str:
        return stripe.Payout.create(amount=self.state.cents, destination=self.state.account).id

    @listen("rejected")
    def notify_requester(self) -> None:
        WebClient(token=os.environ["SLACK_TOKEN"]).chat_postMessage(
            channel=self.state.requester, text="Your payout was not approved."
        )


class NightlyFlow(Flow):
    @start()
    def rotate_db_password(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            conn.execute("UPDATE users SET password_hash = NULL WHERE stale")

    @listen(rotate_db_password)
    def report(self) -> str:
        return "rotated"
