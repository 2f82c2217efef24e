"""Pause a run of the test agent in a process of its own, then exit (run with sys.executable).

    python pause_run.py --db CHECKPOINTS --thread T --url URL --key SK --plan JSON
                        [--sla PT2S] [--callback-url URL]

Prints `{"interrupts": [...]}` (the pending interrupt ids) as its last line.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from agent import build_graph, plan_message
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver

from signoff import Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--sla")
    parser.add_argument("--callback-url")
    args = parser.parse_args()
    calls = [(c["id"], c["args"]) for c in json.loads(args.plan)]
    with (
        Client(base_url=args.url, api_key=args.key) as client,
        closing(sqlite3.connect(args.db, check_same_thread=False)) as conn,
    ):
        graph = build_graph(
            checkpointer=SqliteSaver(conn),
            client=client,
            sla=args.sla,
            callback_url=args.callback_url,
        )
        config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
        graph.invoke({"messages": [plan_message(calls)]}, config, durability="sync")
        pending = [i.id for i in graph.get_state(config).interrupts]
    print(json.dumps({"interrupts": pending}))
    return 0 if pending else 1


if __name__ == "__main__":
    raise SystemExit(main())
