"""Report publishing agent (prebuilt ReAct agent that pauses before every tool call)."""

import boto3
import httpx
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

s3 = boto3.client("s3")


@tool
def list_reports(prefix: str) -> list[str]:
    """List report files in the bucket."""
    listing = s3.list_objects_v2(Bucket="reports", Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


@tool
def publish_report(key: str, body: str) -> str:
    """Upload a report to the public bucket."""
    s3.put_object(Bucket="public-reports", Key=key, Body=body.encode())
    return key


@tool
def remove_report(key: str) -> str:
    """Remove a report from the public bucket."""
    s3.delete_object(Bucket="public-reports", Key=key)
    return key


@tool
async def notify_subscribers(subject: str, body: str) -> str:
    """Email the newsletter subscribers."""
    async with httpx.AsyncClient() as client:
        await client.post(
            "https://api.mailgun.net/v3/news.example.com/messages",
            data={"to": "subscribers@news.example.com", "subject": subject, "text": body},
        )
    return "queued"


agent = create_react_agent(
    "openai:gpt-5",
    tools=[list_reports, publish_report, remove_report, notify_subscribers],
    interrupt_before=["tools"],
)
