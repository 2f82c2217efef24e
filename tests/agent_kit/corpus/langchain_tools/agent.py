"""A coding assistant on LangChain's create_agent, and a legacy AgentExecutor for billing.

Scanner corpus: never imported.
"""

import io
import os
import shutil
import subprocess
from contextlib import redirect_stdout

import requests
import stripe
from langchain.agents import AgentExecutor, create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_community.tools import ShellTool
from langchain_core.tools import StructuredTool, Tool
from slack_sdk import WebClient


def read_file(path: str) -> str:
    """Read a file from the workspace."""
    with open(path) as f:
        return f.read()


def write_file(path: str, content: str) -> str:
    """Write a file in the workspace."""
    with open(path, "w") as f:
        f.write(content)
    return "ok"


def delete_path(path: str) -> str:
    """Delete a file or a directory tree."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
    return "deleted"


def run_tests(target: str) -> str:
    """Run the unit tests under a path."""
    return subprocess.run(["pytest", "-q", target], capture_output=True, text=True).stdout


def execute_python(code: str) -> str:
    """Execute Python code and return what it printed."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        exec(code, {})
    return buffer.getvalue()


def search_web(query: str) -> str:
    """Search the web."""
    response = requests.post(
        "https://api.search.example.com/v1/search", json={"q": query}, timeout=10
    )
    return response.text


def post_to_slack(channel: str, text: str) -> str:
    """Post a message to a Slack channel."""
    WebClient(token=os.environ["SLACK_TOKEN"]).chat_postMessage(channel=channel, text=text)
    return "posted"


def charge_card(customer_id: str, amount_cents: int) -> str:
    """Charge the customer's saved card."""
    intent = stripe.PaymentIntent.create(
        customer=customer_id, amount=amount_cents, currency="usd", confirm=True
    )
    return intent.id


coder = create_agent(
    "openai:gpt-5",
    tools=[read_file, write_file, delete_path, run_tests, execute_python, search_web],
    middleware=[
        HumanInTheLoopMiddleware(
            interrupt_on={
                "write_file": True,
                "delete_path": {"allowed_decisions": ["approve", "reject"]},
                "execute_python": False,
                "read_file": False,
            }
        )
    ],
)

billing_tool = StructuredTool.from_function(
    func=charge_card, name="charge_card", description="Charge a card"
)
slack_tool = Tool(name="post_to_slack", func=post_to_slack, description="Post to Slack")
executor = AgentExecutor(agent=None, tools=[billing_tool, slack_tool, ShellTool()])
