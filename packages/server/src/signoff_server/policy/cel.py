"""Policy conditions in CEL, evaluated by the `common-expression-language` package (cel-rust).

A condition sees one variable, `request`, built only from machine-observed fields of the new
request (DESIGN.md §1.6): the action (name and arguments), the business object, the agent
(id from the authenticated key), the declared risk, the initiator and the correlation map. The
agent's own `summary` and `context` are deliberately absent, so agent-written text can never
steer routing.

Arguments arrive as JSON: numbers may be strings (`"12500.00"`). Compare amounts with
`double(request.action.arguments.amount) > 10000.0`, which accepts both numbers and numeric
strings. A condition that fails to evaluate (a missing field, a string that is no number, a
non-boolean result) raises `ConditionError`; the router then fails closed (see router.py).
"""

from __future__ import annotations

import re
from typing import Any

import cel as _cel

from signoff.models import RequestCreate

__all__ = ["Condition", "ConditionError", "request_activation"]

_MACROS = "all|exists|exists_one|map|filter"


class ConditionError(Exception):
    """A condition did not compile, or did not evaluate to a boolean."""


class Condition:
    """A compiled CEL condition; `evaluate` is thread-safe and needs no re-parsing."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._program = _cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ConditionError(_first_line(str(exc))) from None
        # Comprehension variables (the `x` of `.exists(x, ...)`) are listed too: only names no
        # macro binds are unknown.
        for name in sorted(set(self._program.variables()) - {"request"}):
            if not re.search(rf"\.\s*(?:{_MACROS})\s*\(\s*{re.escape(name)}\s*,", source):
                raise ConditionError(
                    f"unknown variable {name!r}: a condition can only use 'request'"
                )

    def evaluate(self, activation: dict[str, Any]) -> bool:
        """The condition's value for `activation` (`{"request": ...}`)."""
        try:
            result = self._program.execute(activation)
        except KeyError as exc:
            raise ConditionError(f"no field {exc.args[0]!r} in the request") from None
        except Exception as exc:  # the binding raises several kinds for a failed evaluation
            raise ConditionError(_first_line(str(exc))) from None
        if not isinstance(result, bool):
            raise ConditionError(f"evaluated to {type(result).__name__}, not a boolean")
        return result

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "invalid expression"


def request_activation(payload: RequestCreate, agent_id: str) -> dict[str, Any]:
    """The `request` variable a condition sees: machine-observed fields only."""
    asked = payload.model_dump(mode="json")
    return {
        "request": {
            "action": asked["action"],
            "business_object": asked["business_object"],
            "agent": {**asked["agent"], "id": agent_id},
            "risk": asked["risk"],
            "initiator": asked["initiator"],
            "correlation": asked["correlation"],
        }
    }
