"""Billing assistant on the OpenAI Agents SDK; the database is SQLAlchemy async."""

from dataclasses import dataclass

import stripe
from agents import Agent, RunContextWrapper, WebSearchTool, function_tool
from app.db import get_session
from app.models import Customer, Invoice


@dataclass
class Ctx:
    account_id: str


@function_tool
async def apply_discount(ctx: RunContextWrapper[Ctx], invoice_id: str, percent: float) -> str:
    """Apply a discount to an open invoice."""
    async with get_session() as session:
        invoice = await session.get(Invoice, invoice_id)
        invoice.amount = invoice.amount * (1 - percent / 100)
        await session.commit()
    return "ok"


@function_tool
async def cancel_subscription(ctx: RunContextWrapper[Ctx], subscription_id: str) -> str:
    """Cancel the customer's subscription at the end of the period."""
    sub = stripe.Subscription.modify(subscription_id, cancel_at_period_end=True)
    return sub.status


@function_tool
async def lookup_customer(ctx: RunContextWrapper[Ctx], email: str) -> dict:
    """Find a customer by email."""
    async with get_session() as session:
        customer = await session.scalar(Customer.by_email(email))
        return {"id": customer.id, "plan": customer.plan}


@function_tool
async def merge_customers(ctx: RunContextWrapper[Ctx], keep_id: str, drop_id: str) -> str:
    """Merge a duplicate customer record into another one and delete the duplicate."""
    async with get_session() as session:
        duplicate = await session.get(Customer, drop_id)
        await session.delete(duplicate)
        await session.commit()
    return keep_id


billing = Agent[Ctx](
    name="Billing",
    instructions="Answer billing questions.",
    tools=[apply_discount, cancel_subscription, lookup_customer, merge_customers, WebSearchTool()],
)
