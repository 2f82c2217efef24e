"""`signoff-mcp proxy`: wrap an upstream MCP server and gate its tools with signoff.

The proxy lists the upstream's tools as its own. A call to one of them (unless it is on the
local allow-list) becomes a signoff request for the action `mcp.<server>.<tool>` with the call's
arguments; the policy routes or auto-decides it. The proxy waits a short while (at most 25 s, so
no MCP client times out) and then:

- approved → forwards the call (with the reviewer's edited arguments after an `edit`) and
  reports the outcome; the approval is then used up, and the same call needs a new one;
- rejected, responded, expired, cancelled → an error result naming the reason, nothing forwarded;
- still pending → an error result telling the model to call the same tool with the same
  arguments again later (the repeated call finds the same request: the key is deterministic);
- any error reaching signoff → an error result; nothing is forwarded (fail closed).

Risk: tool annotations can only raise it. An upstream that is not marked `trusted` counts as
destructive whatever its annotations claim (`high`); a trusted one gets the base risk, raised to
`high` for tools that do not declare themselves non-destructive (MCP's own default).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

import signoff
from signoff import AgentRef, AsyncClient, OutcomeStatus, Request, RequestCreate, Risk, Status
from signoff_mcp.server import MAX_WAIT_SECONDS, is_approved

__all__ = ["ProxyOptions", "create_proxy", "risk_for", "run_proxy"]

_MAX_GENERATIONS = 1000


@dataclass(frozen=True, kw_only=True)
class ProxyOptions:
    """How the proxy gates one upstream server."""

    name: str
    """The upstream's name, used in action names: `mcp.<name>.<tool>`."""
    allow: frozenset[str] = field(default_factory=frozenset[str])
    """Upstream tools that run without approval."""
    trusted: bool = False
    """Whether the upstream's tool annotations may be believed (they still only raise risk)."""
    base_risk: Risk = Risk.MEDIUM
    wait_seconds: float = 20.0
    """How long one call waits for a decision before answering `pending` (at most 25 s)."""
    route: str | None = None


def risk_for(tool: types.Tool | None, options: ProxyOptions) -> Risk:
    """The risk of calling `tool`: annotations raise it, never lower it."""
    if not options.trusted or tool is None or tool.annotations is None:
        return Risk.HIGH if Risk.HIGH.rank > options.base_risk.rank else options.base_risk
    hints = tool.annotations
    destructive = hints.read_only_hint is not True and hints.destructive_hint is not False
    if destructive and Risk.HIGH.rank > options.base_risk.rank:
        return Risk.HIGH
    return options.base_risk


def _key(options: ProxyOptions, tool: str, arguments: dict[str, Any], generation: int) -> str:
    body = json.dumps(
        {"server": options.name, "tool": tool, "arguments": arguments},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return f"mcp-proxy:{hashlib.sha256(body.encode()).hexdigest()[:40]}:{generation}"


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _refusal(request: Request) -> str:
    final = request.final_decision
    who = final.decided_by.user if final else "nobody"
    comment = f": {final.comment}" if final and final.comment else ""
    match request.status:
        case Status.PENDING:
            return (
                f"Not executed: approval {request.id} is pending in signoff. Do not work around "
                "it. Call this same tool with the same arguments again to keep waiting."
            )
        case Status.RESPONDED:
            return f"Not executed. The reviewer ({who}) answered instead{comment}."
        case Status.EXPIRED:
            return "Not executed: no decision arrived before the deadline."
        case Status.CANCELLED:
            return "Not executed: the approval request was cancelled."
        case _:
            return f"Not executed: rejected by {who}{comment}."


class _Gate:
    def __init__(self, options: ProxyOptions, client_factory: Callable[[], AsyncClient]) -> None:
        self.options = options
        self.client_factory = client_factory
        self.upstream: Client | None = None
        self.tools: dict[str, types.Tool] = {}

    def payload(self, tool: str, arguments: dict[str, Any], generation: int) -> RequestCreate:
        known = self.tools.get(tool)
        hints = (
            known.annotations.model_dump(exclude_none=True) if known and known.annotations else None
        )
        return RequestCreate.model_validate(
            {
                "action": {"name": f"mcp.{self.options.name}.{tool}", "arguments": arguments},
                "business_object": {"type": "mcp_server", "id": self.options.name},
                "summary": f"Call {tool} on the MCP server {self.options.name}",
                "context": {"annotations": hints, "trusted": self.options.trusted},
                "agent": AgentRef(framework="mcp-proxy"),
                "correlation": {"server": self.options.name, "tool": tool},
                "risk": risk_for(known, self.options),
                "route": {"role": self.options.route} if self.options.route else None,
                "idempotency_key": _key(self.options, tool, arguments, generation),
            }
        )

    async def request_for(
        self, client: AsyncClient, tool: str, arguments: dict[str, Any]
    ) -> Request:
        """The live request for this call: the first one of its key series not yet used up."""
        for generation in range(_MAX_GENERATIONS):
            request = await client.create_request(self.payload(tool, arguments, generation))
            if request.outcome is None:
                return request
        raise signoff.SignoffError("too many earlier approvals of this exact call")

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        upstream = self.upstream
        if upstream is None:
            return _error("Not executed: the upstream server is not connected.")
        if name not in self.tools:
            return _error(f"Not executed: unknown tool {name!r}.")
        if name in self.options.allow:
            return await upstream.call_tool(name, arguments)
        try:
            async with self.client_factory() as client:
                request = await self.request_for(client, name, arguments)
                if request.status is Status.PENDING:
                    wait = max(0.0, min(self.options.wait_seconds, MAX_WAIT_SECONDS))
                    try:
                        request = await client.wait(request.id, timeout=wait)
                    except signoff.TimeoutError:
                        return _error(_refusal(request))
                if not is_approved(request):
                    await _report(client, request, OutcomeStatus.SKIPPED, _refusal(request))
                    return _error(_refusal(request))
                try:
                    result = await upstream.call_tool(name, dict(request.effective_arguments))
                except Exception as exc:
                    await _report(client, request, OutcomeStatus.FAILED, f"{exc}")
                    raise
                # The reported outcome uses the approval up: the same call needs a new one.
                status = OutcomeStatus.FAILED if result.is_error else OutcomeStatus.EXECUTED
                await _report(client, request, status, "forwarded upstream")
                return result
        except (signoff.SignoffError, ValueError) as exc:
            return _error(f"Not executed: the approval could not be obtained ({exc}).")


async def _report(
    client: AsyncClient, request: Request, status: OutcomeStatus, detail: str
) -> None:
    with contextlib.suppress(signoff.Conflict):  # already reported
        await client.report_outcome(request.id, status, detail=detail[:4000])


def create_proxy(
    upstream: Any,
    options: ProxyOptions,
    client_factory: Callable[[], AsyncClient] | None = None,
) -> Server[Any]:
    """A low-level MCP server that gates the tools of `upstream`.

    `upstream` is anything `mcp.Client` connects to: `StdioServerParameters`, a URL, or (in
    tests) an in-process server. The upstream is connected for the proxy's lifetime.
    """
    gate = _Gate(options, client_factory or AsyncClient)

    @asynccontextmanager
    async def lifespan(_server: Server[Any]) -> AsyncGenerator[dict[str, Any]]:
        async with Client(upstream) as client:
            gate.upstream = client
            gate.tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            try:
                yield {}
            finally:
                gate.upstream = None

    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = [
            tool
            if tool.name in options.allow
            else tool.model_copy(
                update={
                    "description": (tool.description or "")
                    + " (Each call needs a human's approval through signoff; while it is"
                    " pending, call again with the same arguments.)"
                }
            )
            for tool in gate.tools.values()
        ]
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        _ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await gate.call(params.name, dict(params.arguments or {}))

    def input_schema(name: str) -> dict[str, Any] | None:
        tool = gate.tools.get(name)
        return None if tool is None else dict(tool.input_schema)

    return Server(
        f"signoff-proxy-{options.name}",
        lifespan=lifespan,
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def run_proxy(command: list[str], options: ProxyOptions) -> None:
    """Run the proxy on stdio in front of the upstream started with `command`."""
    # The upstream gets the proxy's environment, minus signoff's own key and settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    upstream = StdioServerParameters(command=command[0], args=command[1:], env=env)
    server = create_proxy(upstream, options)

    async def serve() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(serve)
