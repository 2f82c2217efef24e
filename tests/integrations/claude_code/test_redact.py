"""Secret redaction and the local allow-list, as pure functions."""

from __future__ import annotations

import pytest

from signoff_claude_code import is_allowed, redact

SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "x" * 36,
    "github_pat_" + "A1" * 20,
    "xoxb-1234567890-abcdefghij",
    "sk_live_" + "a" * 24,
    "sk-ant-api03-" + "b" * 30,
    "sk-proj-" + "c" * 30,
    "AIza" + "d" * 35,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_token_formats_are_redacted(secret: str) -> None:
    out = redact({"command": f"deploy --quiet {secret} now"})
    assert secret not in out["command"]
    assert "[REDACTED]" in out["command"]
    assert out["command"].startswith("deploy --quiet")


def test_assignments_urls_headers_keys_and_pem() -> None:
    command = (
        "DB_PASSWORD=hunter22 psql postgres://app:s3cret@db/prod "
        "-H 'Authorization: Bearer abcdefghijklmnop' --api-key=zzzzzzzz"
    )
    out = redact(command)
    for secret in ("hunter22", "s3cret", "abcdefghijklmnop", "zzzzzzzz"):
        assert secret not in out
    assert "psql postgres://app:" in out
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    assert redact({"content": pem})["content"] == "[REDACTED]"
    assert redact({"api_key": "k-123", "nested": [{"password": "p"}], "n": 3}) == {
        "api_key": "[REDACTED]", "nested": [{"password": "[REDACTED]"}], "n": 3,
    }  # fmt: skip


def test_ordinary_commands_are_left_alone() -> None:
    command = "git commit -m 'fix the tokenizer' && pytest -q tests/"
    assert redact(command) == command


def test_allow_list_patterns() -> None:
    patterns = ("Read", "Bash(git status*)", "mcp__docs__*")
    assert is_allowed("Read", {"file_path": "/a"}, patterns)
    assert is_allowed("Bash", {"command": "git status -s"}, patterns)
    assert is_allowed("mcp__docs__search", {}, patterns)
    assert not is_allowed("Bash", {"command": "git push"}, patterns)
    assert not is_allowed("Bash", {"command": "git status && rm -rf /"}, patterns)
    assert not is_allowed("Bash", {"command": "git status > /etc/passwd"}, patterns)
    assert not is_allowed("Write", {"file_path": "/a"}, patterns)
