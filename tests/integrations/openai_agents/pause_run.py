"""Run the test agent until it pauses at the gate, store the run, and exit (another process
resumes it). Used by the conformance driver's separate-process scenario."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from agents import Runner
from signoff_openai_agents import SqliteRunStore, pause
from tests.integrations.openai_agents.agent import RUN, build_agent

from signoff import AsyncClient


async def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--url", "--key", "--store", "--run", "--plan"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--sla")
    parser.add_argument("--callback-url")
    args = parser.parse_args()
    calls = [(c["id"], c["args"]) for c in json.loads(args.plan)]
    async with AsyncClient(base_url=args.url, api_key=args.key) as client:
        agent = build_agent(client, calls=calls, sla=args.sla, callback_url=args.callback_url)
        result = await Runner.run(agent, "pay the invoices", run_config=RUN)
        await pause(result, SqliteRunStore(args.store), run_key=args.run)
    print(json.dumps({"interruptions": len(result.interruptions)}))


asyncio.run(main())
