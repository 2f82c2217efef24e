"""Finance tools for the payables graph (scanner corpus: read as data, never imported)."""

import smtplib

import stripe
from langchain_core.tools import tool


@tool
def get_payment_status(payment_id: str) -> str:
    """Look up where a payment is."""
    return stripe.PaymentIntent.retrieve(payment_id).status


@tool
def release_payment(invoice_id: str, amount: float, vendor_account: str) -> str:
    """Release the payment for an approved invoice."""
    transfer = stripe.Transfer.create(
        amount=int(amount * 100), currency="eur", destination=vendor_account,
        metadata={"invoice_id": invoice_id},
    )
    return transfer.id


@tool
def issue_refund(charge_id: str) -> str:
    """Refund a customer charge."""
    return stripe.Refund.create(charge=charge_id).id


@tool
def match_purchase_order(invoice_id: str) -> dict:
    """Match an invoice against its purchase order."""
    return {"invoice": invoice_id, "po": "PO-7781", "matched": True}


@tool
def email_vendor(address: str, body: str) -> str:
    """Send a note to the vendor."""
    with smtplib.SMTP("smtp.example.com") as smtp:
        smtp.sendmail("ap@example.com", [address], body)
    return "sent"


@tool
def draft_vendor_reply(invoice_id: str) -> str:
    """Draft (do not send) a reply to the vendor."""
    return f"Dear vendor, about {invoice_id}: ..."
