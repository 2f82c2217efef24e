"""signoff for Claude Code: a PreToolUse hook that waits for a human decision and fails closed.

`signoff-claude-hook` is the hook command (`signoff_claude_code.hook`), `signoff-claude-code
install` writes it into Claude Code's settings (`signoff_claude_code.install`), and
`signoff_claude_code.sdk` has helpers for the Claude Agent SDK (needs `claude-agent-sdk`).
"""

from signoff_claude_code.config import HookConfig, is_allowed, load_config
from signoff_claude_code.hook import build_request, decide, output
from signoff_claude_code.install import hook_entry, install
from signoff_claude_code.redact import redact

__all__ = [
    "HookConfig",
    "build_request",
    "decide",
    "hook_entry",
    "install",
    "is_allowed",
    "load_config",
    "output",
    "redact",
]
