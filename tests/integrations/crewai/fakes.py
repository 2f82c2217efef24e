"""Offline stand-ins for the CrewAI tests: a scripted LLM (text mode or function calling) and
the reference scenario's payment tool, which appends every payment it really released to a
ledger file (JSON lines) so a test can count executions, across processes too.

Importable from the tests (`tests.integrations.crewai.fakes`) and, by path, from the scripts
that run a flow in another process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from crewai.llms.base_llm import BaseLLM
from crewai.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr

LEDGER_ENV = "SIGNOFF_TEST_LEDGER"

INVOICE: dict[str, Any] = {
    "invoice_id": "INV-1042",
    "amount": "12500.00",
    "currency": "EUR",
    "vendor_account": "DE89370400440532013000",
}


@dataclass(frozen=True)
class Call:
    """The model calls `name` with `args` (tool call id `call_id` in function-calling mode)."""

    name: str
    args: dict[str, Any]
    call_id: str = "call_1"


@dataclass(frozen=True)
class Answer:
    """The model gives its final answer: `text`, with `{seen}` replaced by the last tool
    result it was shown."""

    text: str = "Done. The tool said: {seen}"


@dataclass(frozen=True)
class Fail:
    """The model call fails (CrewAI then retries the agent's whole execution of the task)."""

    message: str = "the model is overloaded"


class ModelFailure(RuntimeError):
    """What a `Fail` step raises."""


Step = Call | Answer | Fail | Sequence[Call]


class ScriptedLLM(BaseLLM):
    """A model that plays a script, one step per call; `function_calling` picks the mode.

    Text mode answers in CrewAI's ReAct format (`Action:` / `Action Input:` / `Final Answer:`);
    function-calling mode returns OpenAI-style tool-call dicts. Once the script is played out it
    keeps answering. `seen` collects every tool result the model was shown, in order.
    """

    function_calling: bool = False
    script: list[Any] = Field(default_factory=list)
    _played: int = PrivateAttr(default=0)
    _seen: list[str] = PrivateAttr(default_factory=list)
    _known: int = PrivateAttr(default=0)
    _prompts: list[str] = PrivateAttr(default_factory=list)

    def __init__(self, script: Sequence[Step], *, function_calling: bool = False) -> None:
        fields: dict[str, Any] = {"function_calling": function_calling, "script": list(script)}
        super().__init__(model="scripted", **fields)

    @property
    def prompts(self) -> list[str]:
        """The text of each call's messages (system prompt left out), in call order."""
        return list(self._prompts)

    @property
    def seen(self) -> list[str]:
        """Every tool result shown to the model so far."""
        return list(self._seen)

    def supports_function_calling(self) -> bool:
        return self.function_calling

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> Any:
        self._observe(messages)
        self._prompts.append(_text(messages))
        step: Step = self.script[self._played] if self._played < len(self.script) else Answer()
        self._played += 1
        if isinstance(step, Fail):
            raise ModelFailure(step.message)
        if isinstance(step, Answer):
            text = step.text.format(seen=self._seen[-1] if self._seen else "nothing")
            return text if self.function_calling else f"Thought: done\nFinal Answer: {text}"
        calls = [step] if isinstance(step, Call) else list(step)
        if self.function_calling:
            return [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.args)},
                }
                for c in calls
            ]
        first = calls[0]
        return (
            f"Thought: I will use {first.name}\nAction: {first.name}\n"
            f"Action Input: {json.dumps(first.args)}"
        )

    def _observe(self, messages: Any) -> None:
        """Collect the tool results among the messages added since the previous call."""
        if not isinstance(messages, list):
            return
        history = cast(list[Any], messages)
        if len(history) < self._known:
            self._known = 0  # a new conversation: CrewAI retried the task
        fresh, self._known = history[self._known :], len(history)
        for message in fresh:
            if not isinstance(message, dict) or message.get("role") == "system":
                continue
            entry = cast(dict[str, Any], message)
            content = str(entry.get("content") or "")
            if entry.get("role") == "tool":
                self._seen.append(content)
            elif "Observation:" in content:
                # The observation follows the model's action; every third tool use CrewAI
                # appends a reminder of the format (which itself mentions "Observation:").
                last = content.split("Observation:", 1)[1].split("\n\n", 1)[0].strip()
                if last:
                    self._seen.append(last)


def _text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    parts: list[str] = []
    for message in cast(list[Any], messages):
        if isinstance(message, dict) and message.get("role") != "system":
            parts.append(str(cast(dict[str, Any], message).get("content") or ""))
    return "\n".join(parts)


class PaymentArgs(BaseModel):
    """Arguments of `release_payment`."""

    invoice_id: str
    amount: str
    currency: str
    vendor_account: str


class ReleasePayment(BaseTool):
    """The gated action of the reference scenario: pays, and writes the payment to the ledger."""

    name: str = "release_payment"
    description: str = "Release the payment of an invoice to the vendor's account."
    args_schema: type[BaseModel] = PaymentArgs

    def _run(self, invoice_id: str, amount: str, currency: str, vendor_account: str) -> str:
        entry = {
            "invoice_id": invoice_id,
            "amount": amount,
            "currency": currency,
            "vendor_account": vendor_account,
        }
        with Path(os.environ[LEDGER_ENV]).open("a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")
        return f"released {currency} {amount} for {invoice_id}"


def ledger_entries(path: Path) -> list[dict[str, Any]]:
    """Every payment released so far, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
