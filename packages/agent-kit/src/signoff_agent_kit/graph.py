"""Which steps of a workflow graph can run without passing a gate.

Shared by LangGraph and n8n. A step is gated when every path from an entry to it passes an
approval step (or the step itself is paused before it runs). Unknown routing (a `Command` whose
target is computed) is read as "may go anywhere", so a gap is never hidden by what the scanner
cannot see.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

__all__ = ["gates_reaching", "ungated_reach"]


def _successors(
    node: str, edges: Mapping[str, set[str]], dynamic: AbstractSet[str], nodes: Iterable[str]
) -> set[str]:
    return set(nodes) if node in dynamic else edges.get(node, set())


def ungated_reach(
    entries: Iterable[str],
    nodes: AbstractSet[str],
    edges: Mapping[str, set[str]],
    *,
    approvals: AbstractSet[str],
    pause_before: AbstractSet[str] = frozenset(),
    pause_after: AbstractSet[str] = frozenset(),
    dynamic: AbstractSet[str] = frozenset(),
) -> set[str]:
    """The steps reachable from `entries` without passing an approval or a pause."""
    seen: set[str] = set()
    queue = deque(e for e in entries if e not in approvals and e not in pause_before)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        if node in pause_after:
            continue
        for nxt in _successors(node, edges, dynamic, nodes):
            if nxt not in seen and nxt not in approvals and nxt not in pause_before:
                queue.append(nxt)
    return seen


def gates_reaching(
    target: str,
    blockers: Iterable[str],
    nodes: AbstractSet[str],
    edges: Mapping[str, set[str]],
    *,
    dynamic: AbstractSet[str] = frozenset(),
) -> list[str]:
    """The blockers from which `target` is reached without passing another blocker."""
    blocker_set = set(blockers)
    found: list[str] = []
    for blocker in sorted(blocker_set):
        seen: set[str] = set()
        queue = deque(_successors(blocker, edges, dynamic, nodes))
        while queue:
            node = queue.popleft()
            if node in seen or node in blocker_set:
                continue
            seen.add(node)
            if node == target:
                found.append(blocker)
                break
            queue.extend(_successors(node, edges, dynamic, nodes))
    return found
