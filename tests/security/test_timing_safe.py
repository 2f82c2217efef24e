"""Timing-safe comparisons: no secret is compared with `==` (which stops at the first differing
byte) anywhere in the code that handles keys, tokens, signatures, passwords or CSRF tokens.

An AST scan of every module of core, the server and the adapters flags each `==` / `!=` / `in`
between two non-constant values where one side is named like a secret. Every flagged place must
be in REVIEWED below with the reason it is safe; a new one fails the test. The libraries doing
the remaining comparisons are checked to use constant-time primitives too.

Review (the places that do compare secrets):
- webhook signatures: `signoff.webhooks.Verifier` (every adapter's receiver goes through it):
  `hmac.compare_digest` for v1, Ed25519 `verify` (cryptography) for v1a;
- agent keys and personal tokens: the SHA-256 of the presented secret is looked up in an index
  (identity.py). No byte of the secret is compared; what a timing side channel could reveal is
  where a hash of the attacker's own guess sorts, which says nothing about stored secrets;
- web sessions: likewise looked up by hash (inbox/sessions.py); CSRF tokens:
  `hmac.compare_digest` (`csrf_matches`);
- passwords: argon2 `PasswordHasher.verify` (constant time in the hash), and an unknown email
  costs the same argon2 work as a wrong password;
- email decision links: itsdangerous (`hmac.compare_digest`); Slack requests: slack_sdk's
  `SignatureVerifier` (`hmac.compare_digest`);
- audit checkpoints: Ed25519 `verify`.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "core" / "src",
    ROOT / "packages" / "server" / "src",
    *sorted((ROOT / "integrations").glob("*/src")),
]
SECRETISH = re.compile(
    r"secret|token|signature|\bsig\b|\bmac\b|digest|csrf|password|passwd|\bnonce\b|whsk|whsec",
    re.IGNORECASE,
)

# (module path relative to ROOT, the comparison's source) -> why it is not a timing leak.
REVIEWED: dict[tuple[str, str], str] = {
    (
        "packages/server/src/signoff_server/notifications/mail.py",
        "email_links.c.nonce Eq claim.nonce",
    ): "the nonce comes from a link whose signature itsdangerous checked (constant time) "
    "first; it names the link's row and authorizes nothing by itself",
    (
        "packages/server/src/signoff_server/timers.py",
        "timers.c.lease_token Eq timer.lease_token",
    ): "a lease token is this process's own claim on a timer row, never a credential",
}


def _is_constant(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant(e) for e in node.elts)
    # UPPER_CASE names and attributes are constants; len(...) and the like are not secrets.
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, ast.Attribute):
        return node.attr.isupper()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in {"len", "type", "isinstance", "bool", "int"}
    return False


def _is_sql(node: ast.expr) -> bool:
    """A SQLAlchemy column (`table.c.name`): the database compares, by index lookup. A column
    named like a secret must hold its hash (`…_hash`): a raw secret is not stored at all."""
    if not (isinstance(node, ast.Attribute) and ".c." in ast.unparse(node) + "."):
        return False
    return node.attr.endswith("_hash") or not SECRETISH.search(node.attr)


def suspicious(source: str) -> list[str]:
    """The comparisons in `source` that may compare a secret byte by byte."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
            if not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                continue
            if _is_constant(left) or _is_constant(right) or _is_sql(left) or _is_sql(right):
                continue
            text = f"{ast.unparse(left)} {type(op).__name__} {ast.unparse(right)}"
            if SECRETISH.search(ast.unparse(left)) or SECRETISH.search(ast.unparse(right)):
                found.append(text)
    return found


def _modules() -> list[Path]:
    return [
        path
        for source in SOURCES
        for path in sorted(source.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


def test_the_scan_covers_the_auth_and_webhook_code() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _modules()}
    for expected in (
        "core/src/signoff/webhooks.py",
        "core/src/signoff/receiver.py",
        "packages/server/src/signoff_server/identity.py",
        "packages/server/src/signoff_server/app.py",
        "packages/server/src/signoff_server/throttle.py",
        "packages/server/src/signoff_server/inbox/sessions.py",
        "packages/server/src/signoff_server/inbox/routes.py",
        "packages/server/src/signoff_server/notifications/mail.py",
        "packages/server/src/signoff_server/notifications/slack_routes.py",
        "packages/server/src/signoff_server/callbacks/keys.py",
        "integrations/langgraph/src/signoff_langgraph/receiver.py",
        "integrations/openai-agents/src/signoff_openai_agents/durable.py",
        "integrations/crewai/src/signoff_crewai/durable.py",
    ):
        assert expected in names, expected


def test_no_secret_is_compared_with_equality() -> None:
    flagged: dict[tuple[str, str], None] = {}
    for path in _modules():
        module = path.relative_to(ROOT).as_posix()
        for comparison in suspicious(path.read_text()):
            flagged[(module, comparison)] = None
    unreviewed = [key for key in flagged if key not in REVIEWED]
    assert not unreviewed, "\n".join(f"{m}: {c}" for m, c in unreviewed)
    stale = [key for key in REVIEWED if key not in flagged]
    assert not stale, f"reviewed comparisons that are gone: {stale}"


@pytest.mark.parametrize(
    "source",
    [
        "if token == expected: pass",
        "ok = signature != mac.digest()",
        "ok = hmac.new(key, body, 'sha256').hexdigest() == header_sig",
        "ok = given in (session.csrf, other)",
        "ok = stored_password_hash == hash_of(password)",
        "q = select(t).where(t.c.token == presented)",
    ],
)
def test_the_scan_finds_an_equality_on_a_secret(source: str) -> None:
    assert suspicious(source), source


@pytest.mark.parametrize(
    "source",
    [
        "ok = hmac.compare_digest(token, expected)",
        "ok = token is None",
        "ok = scheme == 'v1a'",
        "ok = len(signature) == SIZE",
        "q = select(t).where(t.c.secret_hash == digest(secret))",
        "q = select(t).where(t.c.agent_id == agent_id)",
    ],
)
def test_the_scan_leaves_safe_code_alone(source: str) -> None:
    assert suspicious(source) == [], source


def test_the_libraries_compare_in_constant_time() -> None:
    """What the review above relies on in third-party code."""
    from itsdangerous.signer import Signer, SigningAlgorithm
    from slack_sdk.signature import SignatureVerifier

    from signoff import webhooks
    from signoff_server.inbox import sessions

    assert "self.algorithm.verify_signature" in inspect.getsource(Signer.verify_signature)
    assert "compare_digest" in inspect.getsource(SigningAlgorithm.verify_signature)
    assert "compare_digest" in inspect.getsource(SignatureVerifier.is_valid)
    assert "compare_digest" in inspect.getsource(webhooks)
    assert "compare_digest" in inspect.getsource(sessions.csrf_matches)
