"""signoff for MCP: an approval tool for any MCP-capable agent, and a gating proxy.

`create_server()` is the approval server (`signoff-mcp serve`); `create_proxy()` wraps an
upstream MCP server and gates its tools (`signoff-mcp proxy -- COMMAND...`).
"""

from signoff_mcp.proxy import ProxyOptions, create_proxy, risk_for
from signoff_mcp.server import MAX_WAIT_SECONDS, create_server, decision_payload

__all__ = [
    "MAX_WAIT_SECONDS",
    "ProxyOptions",
    "create_proxy",
    "create_server",
    "decision_payload",
    "risk_for",
]
