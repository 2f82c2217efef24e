"""Tools of the ops crew (scanner corpus: never imported)."""

import os
import subprocess

import boto3
import requests
from crewai.tools import BaseTool, tool
from ops.bank import balance, wire_funds
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["WAREHOUSE_URL"])


class DeployServiceTool(BaseTool):
    name: str = "deploy_service"
    description: str = "Roll a new image out to a production deployment."

    def _run(self, service: str, image: str) -> str:
        subprocess.run(
            ["kubectl", "set", "image", f"deployment/{service}", f"{service}={image}"], check=True
        )
        return "deployed"


class DropTableTool(BaseTool):
    name: str = "drop_table"
    description: str = "Drop a table from the analytics warehouse."

    def _run(self, table: str) -> str:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        return "dropped"


class QueryWarehouseTool(BaseTool):
    name: str = "query_warehouse"
    description: str = "Read one metric from the warehouse."

    def _run(self, metric: str) -> str:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT value FROM metrics WHERE name = :m"), {"m": metric})
            return str(row.scalar())


@tool("Search runbooks")
def search_runbooks(query: str) -> str:
    """Search the runbook wiki."""
    return requests.get("https://wiki.example.com/search", params={"q": query}, timeout=10).text


@tool("Check bank balance")
def check_balance() -> str:
    """How much money is in the operating account."""
    return f"{balance():.2f} EUR"


@tool("Wire vendor payment")
def wire_vendor_payment(vendor_id: str, amount: float) -> str:
    """Pay a vendor by bank wire."""
    return wire_funds(vendor_id, amount)


@tool("Rotate API keys")
def rotate_api_keys(service_user: str) -> str:
    """Rotate the API keys of a service user."""
    iam = boto3.client("iam")
    new_key = iam.create_access_key(UserName=service_user)
    for old in iam.list_access_keys(UserName=service_user)["AccessKeyMetadata"][:-1]:
        iam.delete_access_key(UserName=service_user, AccessKeyId=old["AccessKeyId"])
    return new_key["AccessKey"]["AccessKeyId"]


@tool("Notify customers")
def notify_customers(segment: str, message: str) -> str:
    """Email every customer in a segment."""
    client = SendGridAPIClient(os.environ["SENDGRID_API_KEY"])
    client.send(Mail(from_email="ops@example.com", to_emails=segment, plain_text_content=message))
    return "sent"
