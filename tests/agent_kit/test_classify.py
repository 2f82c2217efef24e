"""Classification: names, docstrings, and the calls in a body (the most reliable signal)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from signoff_agent_kit import Action, Category, scan
from signoff_agent_kit.classify import docstring_categories, name_categories

MONEY, ACCESS, DELETE = Category.MONEY, Category.ACCESS, Category.DELETION
CONTACT, PROD, CODE = Category.CUSTOMER_CONTACT, Category.PRODUCTION, Category.CODE_EXECUTION


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("release_payment", {MONEY}),
        ("ReleasePaymentTool", {MONEY}),
        ("payments.release", {MONEY}),
        ("issue_refund", {MONEY}),
        ("refund_order", {MONEY}),
        ("Wire transfer", {MONEY}),
        ("grant_admin_role", {ACCESS}),
        ("remove_user_from_group", {ACCESS}),
        ("reset_password", {ACCESS}),
        ("rotate_api_keys", {ACCESS}),
        ("delete_user", {DELETE}),
        ("BulkDeleteTool", {DELETE}),
        ("drop_table", {DELETE}),
        ("send_receipt_email", {CONTACT}),
        ("notify_customer", {CONTACT}),
        ("deploy", {PROD}),
        ("merge_pull_request", {PROD}),
        ("run_shell", {CODE}),
        ("python_repl", {CODE}),
        # read-only verbs and nouns that only look like actions
        ("get_payment_status", set()),
        ("refund_status", set()),
        ("refund_policy", set()),
        ("draft_vendor_reply", set()),
        ("lookup_user", set()),
        ("calculate_fee", set()),
        ("clear_cache", set()),
        ("match_purchase_order", set()),
    ],
)
def test_names(name: str, expected: set[Category]) -> None:
    assert {c for c, _ in name_categories(name)} == expected


def test_lone_verbs_do_not_count_for_called_methods() -> None:
    assert name_categories("remove", alone=False) == []  # items.remove(x)
    assert {c for c, _ in name_categories("delete_records", alone=False)} == {DELETE}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("Release the payment for an invoice.", {MONEY}),
        ("Sends an SMS to the customer.", {CONTACT}),
        ("Draft (do not send) a reply to the vendor.", set()),
        ("Returns the status of a payment.", set()),
        ("Refund the order, but never without a receipt.", set()),  # a negation: not trusted
    ],
)
def test_docstrings(doc: str, expected: set[Category]) -> None:
    assert {c for c, _ in docstring_categories(doc)} == expected


def _scan_tool(tmp_path: Path, body: str, name: str = "do_it") -> Action:
    source = "from langchain_core.tools import tool\n" + textwrap.dedent(body)
    (tmp_path / "agent.py").write_text(source, encoding="utf-8")
    found = [a for a in scan([tmp_path]).tools if a.name == name]
    assert len(found) == 1, f"tool {name} not found"
    return found[0]


CALLS = [
    ("import stripe\n@tool\ndef do_it(x):\n    stripe.Transfer.create(amount=1)\n", {MONEY}),
    ("import stripe\n@tool\ndef do_it(x):\n    stripe.PaymentIntent.retrieve(x)\n", set()),
    (
        "from stripe import StripeClient\nc = StripeClient('k')\n"
        "@tool\ndef do_it(x):\n    c.v1.refunds.create(params={})\n",
        {MONEY},
    ),
    (
        "import boto3\ns3 = boto3.client('s3')\n"
        "@tool\ndef do_it(k):\n    s3.delete_object(Bucket='b', Key=k)\n",
        {DELETE},
    ),
    ("import shutil\n@tool\ndef do_it(p):\n    shutil.rmtree(p)\n", {DELETE}),
    ("from pathlib import Path\n@tool\ndef do_it(p):\n    Path(p).unlink()\n", {DELETE}),
    ("@tool\ndef do_it(t):\n    db.execute(f'DROP TABLE {t}')\n", {DELETE}),
    ("@tool\ndef do_it(u):\n    cur.execute('GRANT ALL ON x TO ' + u)\n", {ACCESS}),
    ("@tool\ndef do_it(u):\n    cur.execute('UPDATE users SET role = %s', (u,))\n", {ACCESS}),
    ("@tool\ndef do_it(u):\n    cur.execute('SELECT * FROM users WHERE id = %s', (u,))\n", set()),
    ("@tool\ndef do_it(u):\n    cur.execute('INSERT INTO audit VALUES (%s)', (u,))\n", {PROD}),
    ("import subprocess\n@tool\ndef do_it(c):\n    subprocess.run(c, shell=True)\n", {CODE}),
    (
        "import subprocess\n@tool\ndef do_it(tag):\n"
        "    subprocess.run(['git', 'push', 'origin', tag], check=True)\n",
        {PROD},
    ),
    ("import subprocess\n@tool\ndef do_it():\n    subprocess.run(['ls', '-l'])\n", set()),
    ("import os\n@tool\ndef do_it(p):\n    os.system(f'rm -rf {p}')\n", {DELETE, CODE}),
    ("@tool\ndef do_it(code):\n    exec(code)\n", {CODE}),
    (
        "import requests\n@tool\ndef do_it(u):\n    requests.delete(f'https://x/api/{u}')\n",
        {DELETE},
    ),
    (
        "import requests\n@tool\ndef do_it(u):\n    requests.post('https://api.x.com/v1/payouts')\n",
        {MONEY},
    ),
    (
        "import requests\n@tool\ndef do_it(q):\n    requests.post('https://api.x.com/v1/search')\n",
        set(),
    ),
    ("import requests\n@tool\ndef do_it(q):\n    requests.get('https://api.x.com/pay')\n", set()),
    (
        "import smtplib\n@tool\ndef do_it(m):\n"
        "    with smtplib.SMTP('h') as s:\n        s.send_message(m)\n",
        {CONTACT},
    ),
    (
        "from slack_sdk import WebClient\n@tool\ndef do_it(t):\n"
        "    WebClient().chat_postMessage(channel='c', text=t)\n",
        {CONTACT},
    ),
    ("@tool\ndef do_it(m):\n    sqs.send_message(QueueUrl='q', MessageBody=m)\n", set()),
    (
        "from kubernetes import client\n@tool\ndef do_it(n):\n"
        "    client.AppsV1Api().patch_namespaced_deployment(n, 'prod', {})\n",
        {PROD},
    ),
    ("@tool\ndef do_it(inv):\n    inv.amount = 0\n    session.commit()\n", {MONEY}),
    ("@tool\ndef do_it(row):\n    db.session.delete(row)\n", {DELETE}),
    ("@tool\ndef do_it(items):\n    items.remove(1)\n", set()),
]


@pytest.mark.parametrize(("source", "expected"), CALLS, ids=[s.split("\n")[-2] for s, _ in CALLS])
def test_calls_in_the_body(tmp_path: Path, source: str, expected: set[Category]) -> None:
    tool = _scan_tool(tmp_path, source)
    assert set(tool.categories) == expected, [e.reason for e in tool.evidence]


def test_evidence_follows_project_functions_across_modules(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "bank.py").write_text(
        "import stripe\n\ndef _send(a):\n    return stripe.Payout.create(amount=a)\n\n"
        "def pay(a):\n    return _send(a)\n"
    )
    (tmp_path / "agent.py").write_text(
        "from langchain_core.tools import tool\nfrom pkg.bank import pay\n\n"
        "@tool\ndef settle(a: int) -> str:\n    '''Settle up.'''\n    return pay(a)\n"
    )
    (settle,) = [a for a in scan([tmp_path]).actions if a.name == "settle"]
    deep = [e for e in settle.evidence if e.file == "pkg/bank.py"]
    assert deep, [e.reason for e in settle.evidence]
    assert deep[0].line == 4
    assert "via" in deep[0].reason


def test_recursion_between_functions_terminates(tmp_path: Path) -> None:
    source = (
        "import os\n@tool\ndef do_it(p):\n    return a(p)\n"
        "def a(p):\n    return b(p)\n"
        "def b(p):\n    os.remove(p)\n    return a(p)\n"
    )
    assert _scan_tool(tmp_path, source).categories == [DELETE]


def test_a_read_only_name_vetoes_weak_evidence_only(tmp_path: Path) -> None:
    weak = "import requests\n@tool\ndef get_quote(x):\n    requests.post('https://x.io/v1/q')\n"
    assert _scan_tool(tmp_path, weak, "get_quote").categories == []
    strong = "import stripe\n@tool\ndef get_quote(x):\n    stripe.Charge.create(amount=x)\n"
    assert _scan_tool(tmp_path, strong, "get_quote").categories == [MONEY]
