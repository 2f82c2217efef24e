"""A tiny upstream MCP server on stdio for the proxy's console-script test.

It appends each deleted branch to the file named by `UPSTREAM_LEDGER`, so the test can see
whether a call reached it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("git")


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def delete_branch(branch: str) -> str:
    """Delete a branch."""
    with Path(os.environ["UPSTREAM_LEDGER"]).open("a", encoding="utf-8") as ledger:
        ledger.write(branch + "\n")
    return f"deleted {branch}"


if __name__ == "__main__":
    server.run("stdio")
