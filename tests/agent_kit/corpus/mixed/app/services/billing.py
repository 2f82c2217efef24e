"""Money movement, used by several agents (scanner corpus: never imported)."""

import stripe


def pay_vendor(vendor_account: str, amount_cents: int) -> str:
    return stripe.Payout.create(amount=amount_cents, currency="eur", destination=vendor_account).id


def payout_state(payout_id: str) -> str:
    return stripe.Payout.retrieve(payout_id).status
