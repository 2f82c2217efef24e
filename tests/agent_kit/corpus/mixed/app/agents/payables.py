"""Payables agent: the signoff client used directly inside tools."""

import stripe
from agents import Agent, function_tool
from app.services.billing import pay_vendor, payout_state
from signoff import Client

client = Client("http://localhost:8080", api_key="sk_example")


@function_tool
def pay_supplier(vendor_account: str, amount_cents: int, invoice_id: str) -> str:
    """Pay a supplier invoice once finance approves it."""
    request = client.create_request(
        {
            "action": {"name": "payments.supplier", "arguments": {"amount": amount_cents}},
            "business_object": {"type": "invoice", "id": invoice_id},
        }
    )
    decided = client.wait(request.id, timeout=3600)
    if decided.status != "approved":
        return f"not paid: {decided.status}"
    return pay_vendor(vendor_account, amount_cents)


@function_tool
def check_supplier_payment(payout_id: str) -> str:
    """Where is a supplier payout?"""
    return payout_state(payout_id)


@function_tool
def refund_duplicate(charge_id: str) -> str:
    """Refund a duplicate charge, then file it for review."""
    refund = stripe.Refund.create(charge=charge_id)
    client.create_request({"action": {"name": "payments.refund_review"}, "business_object": {}})
    return refund.id


payables = Agent(
    name="Payables", tools=[pay_supplier, check_supplier_payment, refund_duplicate]
)
