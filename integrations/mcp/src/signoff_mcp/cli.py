"""`signoff-mcp`: run the approval server (`serve`) or the gating proxy (`proxy`).

Configuration comes from the environment: `SIGNOFF_URL` and `SIGNOFF_API_KEY` (an agent key).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signoff-mcp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the approval MCP server")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    proxy = commands.add_parser("proxy", help="gate another MCP server's tools")
    proxy.add_argument("--name", default=None, help="the upstream's name in action names")
    proxy.add_argument(
        "--allow", action="append", default=[], help="an upstream tool that needs no approval"
    )
    proxy.add_argument("--wait-seconds", type=float, default=20.0)
    proxy.add_argument(
        "--trusted", action="store_true", help="believe the upstream's tool annotations"
    )
    proxy.add_argument("--route", default=None, help="the reviewer role for its requests")
    proxy.add_argument("upstream", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `signoff-mcp` console script."""
    args = _parser().parse_args(argv)
    if not os.environ.get("SIGNOFF_URL"):
        print("signoff-mcp: set SIGNOFF_URL (and SIGNOFF_API_KEY)", file=sys.stderr)
        return 2
    if args.command == "serve":
        from signoff_mcp.server import create_server

        server = create_server()
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port)
        return 0
    from signoff_mcp.proxy import ProxyOptions, run_proxy

    command = [part for part in args.upstream if part != "--"] if args.upstream else []
    if not command:
        print("signoff-mcp proxy: give the upstream command after --", file=sys.stderr)
        return 2
    options = ProxyOptions(
        name=args.name or os.path.basename(command[0]),
        allow=frozenset(args.allow),
        wait_seconds=args.wait_seconds,
        trusted=args.trusted,
        route=args.route,
    )
    run_proxy(command, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
