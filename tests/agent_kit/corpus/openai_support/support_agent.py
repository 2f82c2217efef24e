"""Customer-support agent on the OpenAI Agents SDK (scanner corpus: never imported)."""

import dataclasses
import os

import psycopg
import requests
import stripe
from agents import Agent, function_tool
from agents.mcp import MCPServerStdio, MCPServerStreamableHttp
from signoff import AsyncClient
from signoff_openai_agents import GateOptions, approval_guardrail, gate
from twilio.rest import Client as Twilio

signoff_client = AsyncClient("http://localhost:8080", api_key="sk_example")
db = psycopg.connect(os.environ["DATABASE_URL"])


@function_tool
def lookup_order(order_id: str) -> dict:
    """Fetch an order and its shipping status."""
    return requests.get(f"https://shop.example.com/api/orders/{order_id}", timeout=10).json()


@function_tool(needs_approval=True)
def refund_order(order_id: str, amount: float) -> str:
    """Refund an order to the customer's card."""
    return stripe.Refund.create(payment_intent=order_id, amount=int(amount * 100)).id


@function_tool
def issue_store_credit(customer_id: str, amount: float) -> str:
    """Give the customer store credit."""
    response = requests.post(
        "https://shop.example.com/api/credits",
        json={"customer": customer_id, "amount": amount},
        timeout=10,
    )
    return response.json()["id"]


@function_tool
def send_sms(phone: str, text: str) -> str:
    """Text the customer."""
    twilio = Twilio(os.environ["TWILIO_SID"], os.environ["TWILIO_TOKEN"])
    return twilio.messages.create(to=phone, from_="+15550100", body=text).sid


@function_tool(
    tool_input_guardrails=[
        approval_guardrail(
            client=signoff_client,
            options=GateOptions(action="accounts.close", route="support-lead"),
        )
    ]
)
def close_account(customer_id: str) -> str:
    """Close the customer's account."""
    requests.delete(f"https://shop.example.com/api/customers/{customer_id}", timeout=10)
    return "closed"


@function_tool
def delete_customer_data(customer_id: str) -> str:
    """Erase everything we store about a customer (GDPR request)."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE id = %s", (customer_id,))
    return "erased"


@function_tool
def reset_customer_password(customer_id: str) -> str:
    """Start a password reset for the customer."""
    requests.post(
        f"https://auth.example.com/admin/users/{customer_id}/password-reset", timeout=10
    )
    return "reset sent"


@function_tool
def summarize_ticket(ticket_text: str) -> str:
    """Summarize a support ticket in three bullet points."""
    return ticket_text[:200]


reset_customer_password = dataclasses.replace(reset_customer_password, needs_approval=True)
gated_credit = gate(
    issue_store_credit, client=signoff_client, action="credits.issue", route="support-lead"
)

github = MCPServerStdio(
    name="github",
    params={"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
)
stripe_mcp = MCPServerStreamableHttp(
    name="stripe", params={"url": "https://mcp.stripe.com"}, require_approval="always"
)

support = Agent(
    name="Support",
    instructions="Help customers with orders, refunds and accounts.",
    tools=[
        lookup_order,
        refund_order,
        gated_credit,
        send_sms,
        close_account,
        delete_customer_data,
        reset_customer_password,
        summarize_ticket,
    ],
    mcp_servers=[github, stripe_mcp],
)

triage = Agent(
    name="Triage",
    instructions="Route the customer to the right agent.",
    handoffs=[support],
    tools=[lookup_order],
)
