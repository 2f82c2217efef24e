"""Start the invoice flow in a process of its own until it pauses, then exit (sys.executable).

    python pause_flow.py --db FLOWS.DB --url URL --key SK --payment JSON --call-id ID
                         [--sla PT2S] [--callback-url URL]

Prints `{"flow_id": ...}` as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.persistence import SQLiteFlowPersistence
from tests.integrations.crewai.flow_app import build_flow

from signoff import Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--payment", required=True)
    parser.add_argument("--call-id", required=True)
    parser.add_argument("--sla")
    parser.add_argument("--callback-url")
    args = parser.parse_args()
    persistence = SQLiteFlowPersistence(args.db)
    with Client(base_url=args.url, api_key=args.key) as client:
        flow = build_flow(persistence, client=client, callback_url=args.callback_url, sla=args.sla)(
            persistence=persistence
        )
        result = flow.kickoff(inputs={"payment": json.loads(args.payment), "call_id": args.call_id})
    if not isinstance(result, HumanFeedbackPending):
        print(f"the flow did not pause: {result!r}", file=sys.stderr)
        return 1
    print(json.dumps({"flow_id": result.context.flow_id}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
