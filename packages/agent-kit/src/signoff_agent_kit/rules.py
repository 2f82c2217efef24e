"""The name tables: which words in a name mean which category.

Data only; `classify.py` applies it (`call_rules.py` holds the tables for calls and strings).
Names are those of tools, of called methods and of declared action names: a leading verb paired
with an object word (`release_payment`, `grant_role`, `delete_records`), or a verb that says it
alone (`refund`, `deploy`). A read-only leading verb (`get_`, `list_`, `draft_`) vetoes the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from signoff_agent_kit.model import Category

__all__ = [
    "ACCESS_CORE",
    "HARMLESS_OBJECTS",
    "NAME_RULES",
    "NOUN_VETO",
    "READ_VERBS",
    "STRIP_TOKENS",
    "NameRule",
    "words",
]


def _words(text: str) -> frozenset[str]:
    out: set[str] = set()
    for w in text.split():
        out.add(w)
        if w.endswith("y") and not w.endswith(("ay", "ey", "oy")):
            out.add(w[:-1] + "ies")
        elif not w.endswith("s"):
            out.add(w + "s")
    return frozenset(out)


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of `text`."""
    return frozenset(text.split())


_V = words


READ_VERBS = _V(
    """get fetch read list search find lookup look check retrieve show describe view count
    preview draft estimate calculate calc compute summarize summarise validate verify
    parse format render explain analyze analyse inspect compare match score classify
    recommend suggest plan simulate dry is has can load extract translate convert query
    download browse scan audit diff test lint watch monitor track poll wait ask request
    propose prepare review evaluate print log quote forecast predict resolve select
    filter sort return provide answer tell help"""
)
"""A name that starts with one of these reads, drafts or proposes: it does not act."""

STRIP_TOKENS = _V(
    """tool tools node action fn func function step task op operation handler impl async
    sync the a an do try bulk batch force hard soft permanently mass safe auto my"""
)
"""Dropped from the ends of a name before the verb is read (`BulkDeleteTool` → `delete`)."""

NOUN_VETO = _V(
    """status info information details detail history report summary lookup list preview
    estimate quote eligibility count total amount stats metrics policy checker
    calculator validator log logs id ids reason reasons rate rates schema template form
    url link page docs doc options option limit limits window"""
)
"""A name ending in one of these uses its verb as a noun (`refund_status`)."""

HARMLESS_OBJECTS = _words(
    """cache screen filter selection input console highlight timer timeout breakpoint tmp temp
    scratch whitespace duplicate"""
)

ACCESS_CORE = _words(
    """role permission access admin privilege group membership member acl policy iam sudo
    sudoer password mfa 2fa otp credential collaborator ownership owner scope login sso
    superuser rbac entitlement grant"""
)


@dataclass(frozen=True, slots=True)
class NameRule:
    """Verb-and-object pairs and lone verbs that put a name in a category."""

    category: Category
    pairs: tuple[tuple[frozenset[str], frozenset[str]], ...]
    alone: frozenset[str] = frozenset()
    """Verbs that say it alone: `refund_order`, `deploy`."""
    any_object: frozenset[str] = frozenset()
    """Verbs that take any object except `exclude` (`delete_*`)."""
    exclude: frozenset[str] = frozenset()


MONEY_OBJECTS = _words(
    """payment refund payout fund money transfer wire salary payroll reimbursement remittance
    disbursement cash charge deposit withdrawal stipend bonus commission crypto usdc trade
    credit"""
)

NAME_RULES: tuple[NameRule, ...] = (
    NameRule(
        Category.MONEY,
        pairs=(
            (
                _V(
                    """release refund transfer send issue capture settle approve reimburse
                    initiate process make execute submit schedule authorize create move remit
                    disburse wire pay payout cancel"""
                ),
                MONEY_OBJECTS,
            ),
            (_V("pay approve release settle"), _words("invoice bill vendor supplier contractor")),
            (_V("credit debit"), _words("account customer wallet balance card")),
            (_V("charge"), _words("card customer account subscription")),
            (_V("place"), _words("order trade bet")),
            (_V("apply grant give add issue"), _words("discount coupon rebate voucher")),
        ),
        alone=_V("pay refund payout disburse reimburse wire purchase buy sell"),
    ),
    NameRule(
        Category.ACCESS,
        pairs=(
            (
                _V(
                    """grant revoke assign unassign elevate promote demote add remove attach
                    detach put set update change modify create delete reset disable enable
                    rotate invite share give transfer impersonate unlock suspend ban deactivate
                    activate approve lock reactivate escalate edit"""
                ),
                ACCESS_CORE,
            ),
            (
                _V(
                    """create invite disable enable suspend ban deactivate activate unlock
                    impersonate lock reactivate provision deprovision onboard offboard"""
                ),
                _words("user account employee seat"),
            ),
            (
                _V("create rotate revoke issue generate mint reset regenerate"),
                _words("key apikey token credential secret"),
            ),
            (_V("share"), _words("document file folder drive doc")),
        ),
        alone=_V("grant revoke impersonate elevate sudo"),
    ),
    NameRule(
        Category.DELETION,
        pairs=(),
        alone=_V("delete remove drop purge erase wipe truncate destroy rm unlink shred expunge"),
        any_object=_V(
            """delete remove drop purge erase wipe truncate destroy rm unlink shred expunge clear
            nuke prune"""
        ),
        exclude=ACCESS_CORE | HARMLESS_OBJECTS,
    ),
    NameRule(
        Category.CUSTOMER_CONTACT,
        pairs=(
            (
                _V(
                    """send email mail text message notify post reply respond contact call dm
                    broadcast tweet ping alert sms forward"""
                ),
                _words(
                    """email mail sms text message notification reply customer user client vendor
                    supplier slack tweet newsletter campaign receipt invoice whatsapp push letter
                    dm chat ticket comment channel response reminder followup"""
                ),
            ),
        ),
        alone=_V("email sms notify tweet dm broadcast"),
    ),
    NameRule(
        Category.PRODUCTION,
        pairs=(
            (
                _V(
                    """deploy redeploy rollback roll restart reboot scale terminate shutdown stop
                    start launch provision deprovision migrate upgrade downgrade promote merge
                    push apply publish release patch update change modify set toggle enable
                    disable flip failover drain cordon trigger kill create write commit tag run"""
                ),
                _words(
                    """prod production service cluster deployment deploy instance server vm node
                    pod container stack infra infrastructure database db schema migration config
                    configuration setting feature_flag flag branch main master release build
                    pipeline workflow job cron dns firewall lambda image k8s kubernetes
                    helm terraform environment env replica traffic certificate cert repo
                    repository pr pull merge commit file process"""
                ),
            ),
        ),
        alone=_V("deploy redeploy rollback reboot restart provision deprovision failover"),
    ),
    NameRule(
        Category.CODE_EXECUTION,
        pairs=(
            (
                _V("run execute exec eval invoke spawn"),
                _words(
                    """code shell command cmd script python py bash sh sql query terminal
                    subprocess program notebook cell snippet expression javascript js powershell
                    repl"""
                ),
            ),
        ),
        alone=_V("exec eval shell bash terminal repl interpreter"),
    ),
)
