"""Which framework construct a dotted name is: tool decorators, agents, graphs, gates.

A construct is recognised by the package its import comes from and the name it ends with, so
`from langchain_core.tools import tool`, `from langchain.tools import tool` and
`langchain_core.tools.convert.tool` all count, and a project's own `agents/` package does not
shadow the OpenAI Agents SDK unless it defines the name itself.
"""

from __future__ import annotations

from enum import StrEnum

from signoff_agent_kit.classify import strip_calls
from signoff_agent_kit.detect.module import Project

__all__ = ["SIGNOFF_ADAPTERS", "Construct", "adapter_framework", "construct", "is_signoff_adapter"]

_LC = ("langchain", "langchain_core", "langchain_community", "langchain_experimental")
_LG = ("langgraph",)
_OA = ("agents",)
_CR = ("crewai", "crewai_tools")
_MCP = ("mcp", "fastmcp")


class Construct(StrEnum):
    """The framework constructs the detectors care about."""

    TOOL_DECORATOR = "tool decorator"
    TOOL_WRAPPER = "tool wrapper"
    TOOL_BASE = "tool base class"
    AGENT = "agent"
    CREW = "crew"
    TASK = "task"
    TOOL_NODE = "ToolNode"
    GRAPH = "graph"
    MCP_SERVER = "MCP server"
    HOSTED_MCP = "hosted MCP tool"
    HITL_MIDDLEWARE = "HumanInTheLoopMiddleware"
    INTERRUPT = "interrupt"
    COMMAND = "Command"
    TOOLS_CONDITION = "tools_condition"
    FASTMCP_TOOL = "FastMCP tool"
    CREWAI_HOOK = "crewai hook"
    CREWAI_ON = "crewai on"
    HUMAN_FEEDBACK = "human_feedback"
    FLOW = "Flow"
    FLOW_STEP = "flow step"


_TABLE: dict[Construct, tuple[tuple[str, tuple[str, ...], frozenset[str]], ...]] = {
    Construct.TOOL_DECORATOR: (
        ("langchain", _LC, frozenset({"tool"})),
        ("crewai", _CR, frozenset({"tool"})),
        ("openai-agents", _OA, frozenset({"function_tool"})),
    ),
    Construct.TOOL_WRAPPER: (
        (
            "langchain",
            _LC,
            frozenset({"StructuredTool.from_function", "Tool.from_function", "Tool", "tool"}),
        ),
        ("openai-agents", _OA, frozenset({"function_tool"})),
        ("crewai", _CR, frozenset({"tool"})),
    ),
    Construct.TOOL_BASE: (
        ("crewai", _CR, frozenset({"BaseTool"})),
        ("langchain", _LC, frozenset({"BaseTool", "StructuredTool"})),
    ),
    Construct.AGENT: (
        ("openai-agents", _OA, frozenset({"Agent"})),
        ("crewai", _CR, frozenset({"Agent"})),
        ("langgraph", _LG, frozenset({"create_react_agent"})),
        (
            "langchain",
            _LC,
            frozenset(
                {
                    "create_agent",
                    "AgentExecutor",
                    "initialize_agent",
                    "create_tool_calling_agent",
                    "create_openai_tools_agent",
                    "create_react_agent",
                }
            ),
        ),
    ),
    Construct.CREW: (("crewai", _CR, frozenset({"Crew"})),),
    Construct.TASK: (("crewai", _CR, frozenset({"Task"})),),
    Construct.TOOL_NODE: (("langgraph", _LG, frozenset({"ToolNode"})),),
    Construct.GRAPH: (("langgraph", _LG, frozenset({"StateGraph", "MessageGraph", "Graph"})),),
    Construct.MCP_SERVER: (
        (
            "openai-agents",
            _OA,
            frozenset(
                {"MCPServerStdio", "MCPServerStreamableHttp", "MCPServerSse", "MCPServerSSE"}
            ),
        ),
    ),
    Construct.HOSTED_MCP: (("openai-agents", _OA, frozenset({"HostedMCPTool"})),),
    Construct.HITL_MIDDLEWARE: (("langchain", _LC, frozenset({"HumanInTheLoopMiddleware"})),),
    Construct.INTERRUPT: (("langgraph", _LG, frozenset({"interrupt"})),),
    Construct.COMMAND: (("langgraph", _LG, frozenset({"Command", "Send"})),),
    Construct.TOOLS_CONDITION: (("langgraph", _LG, frozenset({"tools_condition"})),),
    Construct.FASTMCP_TOOL: (("mcp", _MCP, frozenset({"FastMCP.tool"})),),
    Construct.CREWAI_HOOK: (
        (
            "crewai",
            _CR,
            frozenset(
                {
                    "before_tool_call",
                    "register_before_tool_call_hook",
                    "register_tool_call_hook",
                }
            ),
        ),
    ),
    Construct.CREWAI_ON: (("crewai", _CR, frozenset({"on"})),),
    Construct.HUMAN_FEEDBACK: (("crewai", _CR, frozenset({"human_feedback"})),),
    Construct.FLOW: (("crewai", _CR, frozenset({"Flow"})),),
    Construct.FLOW_STEP: (("crewai", _CR, frozenset({"start", "listen", "router"})),),
}

SIGNOFF_ADAPTERS: dict[str, str] = {
    "signoff_langgraph": "langgraph",
    "signoff_openai_agents": "openai-agents",
    "signoff_crewai": "crewai",
    "signoff_mcp": "mcp",
    "signoff_claude_code": "claude-code",
}
"""signoff's adapter packages and the framework each one gates."""


def construct(dotted: str, kind: Construct, project: Project | None = None) -> str | None:
    """The framework whose `kind` construct `dotted` names, or None.

    A name the project defines itself (`project.symbol(dotted)`) is never a framework construct.
    """
    plain = strip_calls(dotted)
    root = plain.split(".", 1)[0]
    for framework, roots, suffixes in _TABLE[kind]:
        if root not in roots:
            continue
        if any(plain.endswith("." + s) for s in suffixes):
            if project is not None and project.symbol(plain) is not None:
                return None
            return framework
    return None


def is_signoff_adapter(dotted: str) -> bool:
    """`dotted` comes from one of signoff's adapter packages."""
    return strip_calls(dotted).split(".", 1)[0] in SIGNOFF_ADAPTERS


def adapter_framework(dotted: str) -> str:
    """The framework a signoff adapter call gates (`signoff_crewai.…` → `crewai`)."""
    return SIGNOFF_ADAPTERS.get(strip_calls(dotted).split(".", 1)[0], "python")
