"""Rules every decision channel explains in advance (the lifecycle enforces them)."""

from __future__ import annotations

from signoff.models import CommentRequired, Request, Verdict

__all__ = ["needs_comment"]


def needs_comment(request: Request, verdict: Verdict) -> bool:
    """Whether `verdict` on `request` must come with a comment (`respond` always does)."""
    return (
        verdict is Verdict.RESPOND
        or request.comment_required is CommentRequired.ALWAYS
        or (request.comment_required is CommentRequired.ON_REJECT and verdict is Verdict.REJECT)
    )
