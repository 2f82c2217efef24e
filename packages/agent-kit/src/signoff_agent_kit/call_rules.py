"""The call tables: which calls, and which strings given to them, mean which category.

Data only; `classify.py` applies it. Calls are indexed by the method name at the end of the
dotted call, optionally constrained by the receiver (`stripe.Refund.create`,
`client.refunds.create`, `s3.delete_object`); strings are the SQL, command lines and URLs given
to SQL, shell and HTTP calls (`DELETE FROM`, `git push`, `POST .../payouts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from signoff_agent_kit.model import Category, Confidence
from signoff_agent_kit.rules import words as _V

__all__ = [
    "CALL_RULES",
    "FIELD_WRITES",
    "HTTP_HINTS",
    "HTTP_READ_URL",
    "HTTP_RECEIVER",
    "HTTP_ROOTS",
    "INTERPRETERS",
    "KNOWN_TOOL_CLASSES",
    "KUBERNETES_TAIL",
    "MCP_KEYWORDS",
    "QUEUE_RECEIVER",
    "SHELL_CALLS",
    "SHELL_HINTS",
    "SQL_RULES",
    "SQL_TAILS",
    "CallRule",
]


@dataclass(frozen=True, slots=True)
class CallRule:
    """A call whose method name (and optionally receiver) says what it does."""

    category: Category
    label: str
    tails: frozenset[str]
    receiver: re.Pattern[str] | None = None
    """Searched in the dotted receiver (everything before the method name)."""
    confidence: Confidence = Confidence.HIGH


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_PAYMENT_COLLECTION = _rx(
    r"(^|\.)(refunds?|payouts?|transfers?|charges?|payment_?intents?|payments?|subscriptions?|"
    r"topups?|disbursements?|wires?|wire_transfers?|transactions?|payment_?links?)$"
)
_PAYMENT_SDK = _rx(
    r"\b(stripe|braintree|paypal\w*|adyen|square\w*|plaid|wise|mollie|razorpay|gocardless|"
    r"payments?|billing|bank\w*|ledger|treasury|payouts?|wallet|erp)\b"
)

CALL_RULES: tuple[CallRule, ...] = (
    # -- money -------------------------------------------------------------------------------
    CallRule(
        Category.MONEY,
        "payment SDK write",
        _V(
            """create confirm capture pay execute send submit sale refund approve release post
            modify update cancel delete"""
        ),
        _PAYMENT_COLLECTION,
    ),
    CallRule(Category.MONEY, "invoice payment", _V("pay"), _rx(r"(^|\.)invoices?$")),
    CallRule(
        Category.MONEY,
        "payment SDK call",
        _V("payout refund charge pay transfer disburse wire capture"),
        _PAYMENT_SDK,
    ),
    CallRule(
        Category.MONEY,
        "blockchain transaction",
        _V("send_transaction send_raw_transaction sendTransaction sendRawTransaction transact"),
    ),
    # -- access ------------------------------------------------------------------------------
    CallRule(
        Category.ACCESS,
        "access-control API write",
        _V("create add insert update patch put set attach delete remove grant revoke"),
        _rx(r"(^|\.)(role_?assignments?|permissions?|memberships?|members|acls?|collaborators)$"),
    ),
    # -- deletion ----------------------------------------------------------------------------
    CallRule(
        Category.DELETION,
        "file deletion",
        _V("remove unlink rmdir removedirs rmtree send2trash"),
        _rx(r"^(os|shutil|send2trash|os\.path|pathlib.*)$"),
    ),
    CallRule(Category.DELETION, "file deletion", _V("unlink rmdir rmtree")),
    CallRule(
        Category.DELETION,
        "delete call",
        _V("delete delete_many delete_one destroy purge truncate delete_all bulk_delete"),
        confidence=Confidence.MEDIUM,
    ),
    # -- customer contact --------------------------------------------------------------------
    CallRule(Category.CUSTOMER_CONTACT, "SMTP send", _V("sendmail send_message"), _rx(r"smtp")),
    CallRule(
        Category.CUSTOMER_CONTACT,
        "chat message",
        _V("chat_postMessage chat_postEphemeral chat_scheduleMessage chat_meMessage"),
    ),
    CallRule(
        Category.CUSTOMER_CONTACT,
        "message API",
        _V("create send"),
        _rx(r"(^|\.)(messages|calls|emails|sms)$"),
    ),
    CallRule(
        Category.CUSTOMER_CONTACT,
        "email API",
        _V("send send_email send_message create"),
        _rx(r"\b(sendgrid|resend|postmark\w*|mailgun|mailchimp\w*|yagmail|fastmail|mailjet)\b"),
    ),
    CallRule(
        Category.CUSTOMER_CONTACT,
        "Django mail",
        _V("send_mail send_mass_mail mail_admins mail_managers"),
        _rx(r"^django\.core\.mail$"),
    ),
    CallRule(Category.CUSTOMER_CONTACT, "email send", _V("send"), _rx(r"EmailMessage|EmailMulti")),
    CallRule(Category.CUSTOMER_CONTACT, "SNS publish", _V("publish"), _rx(r"\bsns\b")),
    # -- production change -------------------------------------------------------------------
    CallRule(
        Category.PRODUCTION,
        "cloud infrastructure change",
        _V(
            """run_instances terminate_instances stop_instances reboot_instances start_instances
            update_service update_function_code update_function_configuration create_stack
            update_stack delete_stack modify_db_instance reboot_db_instance
            update_auto_scaling_group set_desired_capacity put_object upload_file upload_fileobj
            put_item update_item batch_write_item change_resource_record_sets create_invalidation
            put_parameter update_secret put_secret_value"""
        ),
    ),
    CallRule(Category.PRODUCTION, "git push", _V("push"), _rx(r"remote|origin|repo|\bgit\b")),
    CallRule(Category.PRODUCTION, "merge", _V("merge"), _rx(r"pull|\bpr\b|merge_request|\bmr\b")),
    CallRule(
        Category.PRODUCTION,
        "repository write",
        _V("create_pull create_git_ref update_file create_file delete_file create_git_commit"),
        confidence=Confidence.MEDIUM,
    ),
    # -- code execution ----------------------------------------------------------------------
    CallRule(Category.CODE_EXECUTION, "remote command", _V("exec_command invoke_shell")),
    CallRule(Category.CODE_EXECUTION, "remote command", _V("run sudo"), _rx(r"Connection\(")),
    CallRule(Category.CODE_EXECUTION, "container run", _V("run"), _rx(r"(^|\.)containers$")),
    CallRule(
        Category.CODE_EXECUTION,
        "REPL",
        _V("run invoke"),
        _rx(r"(PythonREPL|PythonAstREPL|ShellTool|BashProcess)"),
    ),
)

FIELD_WRITES: dict[str, Category] = {
    **dict.fromkeys(
        _V(
            """amount amount_due balance price unit_price total subtotal discount credit
            credit_balance refund_amount fee payout salary"""
        ),
        Category.MONEY,
    ),
    **dict.fromkeys(
        _V("role roles is_admin is_superuser is_staff permissions password password_hash"),
        Category.ACCESS,
    ),
}
"""Fields whose assignment on a stored record (`invoice.amount = …`) moves money or access."""

KUBERNETES_TAIL = _rx(
    r"^(create|patch|replace|delete)_(namespaced_\w+|cluster_\w+|node|namespace|persistent_volume)$"
)

QUEUE_RECEIVER = _rx(r"(sqs|queue|kafka|pubsub|producer|\bbus\b|basic_publish|celery|redis)")
"""Receivers whose `send_message`/`publish` feed a queue, not a person."""

SHELL_CALLS = _V(
    """subprocess.run subprocess.call subprocess.check_call subprocess.check_output
    subprocess.Popen subprocess.getoutput subprocess.getstatusoutput os.system os.popen
    os.execv os.execvp os.execl os.execlp os.execve os.execvpe os.spawnl os.spawnv
    os.spawnlp os.spawnvp os.posix_spawn os.posix_spawnp asyncio.create_subprocess_exec
    asyncio.create_subprocess_shell pexpect.spawn pexpect.run commands.getoutput"""
)

SHELL_HINTS: tuple[tuple[re.Pattern[str], Category, str], ...] = (
    (_rx(r"\bgit\s+push\b"), Category.PRODUCTION, "git push"),
    (
        _rx(r"\bgit\s+(reset\s+--hard|clean\s+-\w*f|branch\s+-D|push\s+.*--force)"),
        Category.DELETION,
        "destructive git",
    ),
    (
        _rx(r"\b(kubectl|oc)\s+(apply|rollout|scale|patch|set|replace|drain|cordon|create|edit)\b"),
        Category.PRODUCTION,
        "kubectl change",
    ),
    (_rx(r"\b(kubectl|oc)\s+delete\b"), Category.DELETION, "kubectl delete"),
    (
        _rx(r"\bhelm\s+(install|upgrade|uninstall|rollback|delete)\b"),
        Category.PRODUCTION,
        "helm release change",
    ),
    (_rx(r"\bterraform\s+(apply|destroy|import)\b"), Category.PRODUCTION, "terraform apply"),
    (_rx(r"\bterraform\s+destroy\b"), Category.DELETION, "terraform destroy"),
    (
        _rx(r"\b(aws|gcloud|az)\s.*\b(delete|terminate|remove|rm|destroy)\b"),
        Category.DELETION,
        "cloud CLI delete",
    ),
    (
        _rx(r"\b(aws|gcloud|az)\s.*\b(deploy|update|create|put|set|start|stop|scale)\b"),
        Category.PRODUCTION,
        "cloud CLI change",
    ),
    (_rx(r"(^|[\s;&|])rm\s"), Category.DELETION, "rm"),
    (
        _rx(r"\bdocker\s+(push|rm|rmi|stop|kill|service\s+update)\b"),
        Category.PRODUCTION,
        "docker change",
    ),
    (
        _rx(r"\b(systemctl|service)\s+\S*\s*(restart|stop|start|reload)\b"),
        Category.PRODUCTION,
        "service restart",
    ),
    (
        _rx(r"\b(fly|vercel|heroku|netlify)\s+(deploy|releases|scale|restart)"),
        Category.PRODUCTION,
        "platform deploy",
    ),
)

INTERPRETERS = _V("""python python3 bash sh zsh node ruby perl pwsh powershell osascript""")
"""A command line that starts with one of these runs a program given to it: code execution."""

SQL_TAILS = _V(
    """execute executemany executescript exec_driver_sql text query raw sql run_sql fetch"""
)

SQL_RULES: tuple[tuple[re.Pattern[str], Category, str, Confidence], ...] = (
    (
        _rx(r"^\s*(GRANT|REVOKE)\b|^\s*(CREATE|ALTER|DROP)\s+(USER|ROLE)\b"),
        Category.ACCESS,
        "SQL grant",
        Confidence.HIGH,
    ),
    (
        _rx(r"^\s*UPDATE\b.*\bSET\b.*\b(role|is_admin|is_superuser|permissions?|password\w*)\b"),
        Category.ACCESS,
        "SQL role update",
        Confidence.HIGH,
    ),
    (
        _rx(
            r"^\s*(DELETE\s+FROM|DELETE\s+\w|TRUNCATE\b|DROP\s+(TABLE|DATABASE|SCHEMA|INDEX|VIEW|COLLECTION)\b)"
        ),
        Category.DELETION,
        "SQL delete",
        Confidence.HIGH,
    ),
    (
        _rx(r"^\s*(INSERT|UPDATE|MERGE|UPSERT|ALTER|CREATE|REPLACE)\b"),
        Category.PRODUCTION,
        "SQL write",
        Confidence.MEDIUM,
    ),
)

HTTP_ROOTS = _V("""requests httpx aiohttp urllib3 treq niquests""")
HTTP_RECEIVER = _rx(r"(session|http|client|api)\w*$")
HTTP_READ_URL = _rx(
    r"search|query|graphql|completions|embeddings|/chat\b|/responses\b|login|oauth|/token|lookup|"
    r"validate|classify|predict|inference|translate|/status"
)
"""POSTs to these endpoints read or compute; they are not writes."""

HTTP_HINTS: tuple[tuple[re.Pattern[str], Category], ...] = (
    (
        _rx(
            r"pay|refund|transfer|charge|invoice|stripe|paypal|adyen|braintree|ledger|disburse|wire|credits?\b|subscription"
        ),
        Category.MONEY,
    ),
    (
        _rx(
            r"mail|sms|slack|twilio|sendgrid|mailgun|postmark|messages?\b|notif|whatsapp|telegram|discord"
        ),
        Category.CUSTOMER_CONTACT,
    ),
    (
        _rx(
            r"/roles?\b|permission|grant|/members?\b|/groups?\b|\biam\b|/acl|/access|/admin/users|password"
        ),
        Category.ACCESS,
    ),
    (_rx(r"deploy|rollout|release|restart|/scale|pipeline|/merge"), Category.PRODUCTION),
)

KNOWN_TOOL_CLASSES: dict[str, tuple[Category, str]] = {
    "ShellTool": (Category.CODE_EXECUTION, "LangChain ShellTool"),
    "PythonREPLTool": (Category.CODE_EXECUTION, "Python REPL tool"),
    "PythonAstREPLTool": (Category.CODE_EXECUTION, "Python REPL tool"),
    "CodeInterpreterTool": (Category.CODE_EXECUTION, "code interpreter tool"),
    "QuerySQLDatabaseTool": (Category.CODE_EXECUTION, "SQL query tool"),
    "QuerySQLDataBaseTool": (Category.CODE_EXECUTION, "SQL query tool"),
    "NL2SQLTool": (Category.CODE_EXECUTION, "SQL query tool"),
    "DeleteFileTool": (Category.DELETION, "file delete tool"),
    "WriteFileTool": (Category.PRODUCTION, "file write tool"),
    "FileWriterTool": (Category.PRODUCTION, "file write tool"),
    "MoveFileTool": (Category.PRODUCTION, "file move tool"),
    "RequestsPostTool": (Category.PRODUCTION, "HTTP POST tool"),
    "RequestsPutTool": (Category.PRODUCTION, "HTTP PUT tool"),
    "RequestsPatchTool": (Category.PRODUCTION, "HTTP PATCH tool"),
    "RequestsDeleteTool": (Category.DELETION, "HTTP DELETE tool"),
    "GmailSendMessage": (Category.CUSTOMER_CONTACT, "Gmail send tool"),
    "SlackSendMessage": (Category.CUSTOMER_CONTACT, "Slack send tool"),
    "O365SendMessage": (Category.CUSTOMER_CONTACT, "Outlook send tool"),
}
"""Ready-made tool classes from LangChain community / crewai-tools that act on their own."""

MCP_KEYWORDS: tuple[tuple[frozenset[str], Category], ...] = (
    (_V("stripe paypal square adyen braintree payments billing plaid wise"), Category.MONEY),
    (_V("okta auth0 iam entra keycloak"), Category.ACCESS),
    (
        _V("slack gmail email mail twilio sendgrid discord telegram whatsapp outlook"),
        Category.CUSTOMER_CONTACT,
    ),
    (
        _V(
            "github gitlab kubernetes k8s aws terraform vercel cloudflare docker heroku netlify"
            " filesystem git"
        ),
        Category.PRODUCTION,
    ),
    (
        _V(
            "shell terminal bash exec commander runner python postgres mysql sqlite mongodb"
            " database sql"
        ),
        Category.CODE_EXECUTION,
    ),
)
"""Words in an MCP server's name, command or URL and what its tools are likely to do."""
