"""Wire data for the core tests: a full server-side Request and a signed-callback body."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

RequestFactory = Callable[..., dict[str, Any]]
EventBodyFactory = Callable[..., bytes]

_REQUEST: dict[str, Any] = {
    "id": "req_01JD3Z5X8K4V7N2M5P9R1T3W6Y",
    "status": "approved",
    "created_at": "2025-01-01T09:00:00Z",
    "due_at": "2025-01-01T09:30:00Z",
    "closed_at": "2025-01-01T09:12:00Z",
    "action": {
        "name": "payments.release",
        "arguments": {"invoice": "INV-1042", "amount": 1250.5, "currency": "EUR"},
    },
    "business_object": {
        "type": "invoice",
        "id": "INV-1042",
        "url": "https://erp.example.com/invoices/INV-1042",
        "attributes": {"vendor": "Acme GmbH", "overdue": False},
    },
    "summary": "Release the payment for invoice INV-1042",
    "context": {"reasoning": "matched PO-77 and the goods receipt"},
    "agent": {"id": "agt_payables", "name": "payables bot", "framework": "langgraph"},
    "initiator": "alice@example.com",
    "correlation": {"thread_id": "th_1", "interrupt_id": "int_9"},
    "risk": "high",
    "route": {"role": "finance-approver"},
    "sla": "PT30M",
    "on_timeout": "reject",
    "approvals": {"mode": "single", "required": 1, "separation_of_duties": True},
    "allowed": ["approve", "reject", "edit"],
    "comment_required": "on_reject",
    "callback": {"url": "https://agent.example.com/signoff/callback"},
    "callback_status": "delivered",
    "idempotency_key": "run-7-step-3",
    "policy": {"name": "large-payments", "rule": "amount > 1000", "version": "cfg_3f2a"},
    "assignees": ["bob@example.com"],
    "escalation_level": 0,
    "decisions": [
        {
            "id": "dec_01JD3Z7A",
            "request_id": "req_01JD3Z5X8K4V7N2M5P9R1T3W6Y",
            "verdict": "approve",
            "comment": "checked against the PO",
            "decided_by": {"user": "bob@example.com", "role": "finance-approver"},
            "via": "web",
            "at": "2025-01-01T09:12:00Z",
        }
    ],
    "outcome": {"status": "executed", "detail": "paid", "at": "2025-01-01T09:13:00Z"},
}


@pytest.fixture
def make_request() -> RequestFactory:
    """A full Request as the server sends it (JSON-ready dict); keyword overrides replace keys."""

    def make(**overrides: Any) -> dict[str, Any]:
        data = copy.deepcopy(_REQUEST)
        data.update(overrides)
        return data

    return make


@pytest.fixture
def make_event_body(make_request: RequestFactory) -> EventBodyFactory:
    """The JSON body of a signed callback event carrying `request` (default: a full Request)."""

    def make(
        event_id: str = "evt_01JD3Z6Q8K4V7N2M5P9R1T3W6Y",
        *,
        event_type: str = "request.decided",
        request: dict[str, Any] | None = None,
    ) -> bytes:
        event = {
            "type": event_type,
            "id": event_id,
            "timestamp": "2025-01-01T09:12:01Z",
            "data": {"request": request if request is not None else make_request()},
        }
        return json.dumps(event).encode()

    return make
