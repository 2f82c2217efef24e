"""RFC 6962 / RFC 9162 Merkle tree math, with no I/O: hashes, the append frontier, proofs.

The audit log of a signoff server is a Merkle tree whose leaves are its entries in `seq` order.
Everything here is a pure function of hashes, so an auditor can check a log export or an evidence
packet with nothing but this module, `signoff.audit` and the log's public key.

* `leaf_hash(entry)` = SHA-256(0x00 || entry), `node_hash(l, r)` = SHA-256(0x01 || l || r), and
  `MTH` splits a range at the largest power of two smaller than its size (RFC 6962 §2.1).
* `Frontier` is the "compact range" of a tree: the roots of its perfect subtrees, largest first
  (one per set bit of the size). Appending a leaf costs O(log n) and names the interior nodes it
  completes, so a store can keep them for proofs.
* `inclusion_proof` / `consistency_proof` build RFC 6962 proofs from a `NodeSource` (any way of
  getting the hash of a subtree); `verify_inclusion` / `verify_consistency` are RFC 9162 §2.1.3.2
  and §2.1.4.2 verbatim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "root_from_leaves",
    "split_point",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256

EMPTY_ROOT = _sha256(b"").digest()
"""MTH of the empty tree."""

NodeSource = Callable[[int, int], bytes]
"""`source(a, b)` is MTH(D[a:b]), the hash of the subtree over leaves a..b-1."""


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the hash of one leaf."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 6962 splits a range."""
    if n < 2:
        raise ValueError("only ranges of two or more leaves are split")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH of a whole tree given its leaf hashes (O(n) time, O(log n) memory)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The aligned perfect subtrees (level, index) covering [start, end), left to right.

    For start = 0 these are the subtrees a frontier of size `end` holds, largest first.
    """
    if not 0 <= start <= end:
        raise ValueError(f"bad range [{start}, {end})")
    found: list[tuple[int, int]] = []
    a = start
    while a < end:
        # The largest aligned block starting at a that fits in [a, end).
        level = (a & -a).bit_length() - 1 if a else (end - a).bit_length() - 1
        while (1 << level) > end - a:
            level -= 1
        found.append((level, a >> level))
        a += 1 << level
    return found


def subtree_hash(start: int, end: int, perfect: Callable[[int, int], bytes]) -> bytes:
    """MTH(D[start:end]) from the hashes of aligned perfect subtrees, `perfect(level, index)`.

    `start` must be aligned to a power of two at least as large as the range (as every range an
    RFC 6962 proof names is); a ragged right edge is folded from its perfect parts.
    """
    n = end - start
    if n <= 0:
        raise ValueError(f"empty range [{start}, {end})")
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        if start % n:
            raise ValueError(f"[{start}, {end}) is not an aligned subtree")
        return perfect(level, start >> level)
    k = split_point(n)
    return node_hash(subtree_hash(start, start + k, perfect), subtree_hash(start + k, end, perfect))


@dataclass
class Frontier:
    """The compact range [0, size): roots of the perfect subtrees, largest first.

    `hashes[i]` is the root of the subtree for the i-th set bit of `size`, from the highest bit.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list[bytes])

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a frontier of size {self.size} has {self.size.bit_count()} hashes, "
                f"not {len(self.hashes)}"
            )

    def copy(self) -> Frontier:
        """An independent copy."""
        return Frontier(self.size, list(self.hashes))

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the interior nodes it completed as (level, index, hash)."""
        index = self.size
        completed: list[tuple[int, int, bytes]] = []
        node = leaf
        level = 0
        while index >> level & 1:
            node = node_hash(self.hashes.pop(), node)
            level += 1
            completed.append((level, index >> level, node))
        self.hashes.append(node)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the tree of this size."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def subtrees(self) -> list[tuple[int, int, bytes]]:
        """The held subtrees as (level, index, hash), largest first."""
        return [
            (level, index, h)
            for (level, index), h in zip(perfect_subtrees(0, self.size), self.hashes, strict=True)
        ]


def _check_range(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1: sibling hashes from the leaf up."""
    _check_range(index, size)
    proof: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split_point(end - start)
        if m < k:
            proof.append(source(start + k, end))
            end = start + k
        else:
            proof.append(source(start, start + k))
            start, m = start + k, m - k
    proof.reverse()
    return proof


def consistency_proof(first: int, second: int, source: NodeSource) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 6962 §2.1.2 (empty when first is 0 or second)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(source(start + k, end))
            end = start + k
        else:
            proof.append(source(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(source(start, end))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show `leaf` at `index` in the tree of `size` with `root`?"""
    if index < 0 or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if len(p) != 32 or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (`second`, `second_root`) an extension of (`first`,
    `first_root`)? Sizes 0 and equal sizes take an empty proof."""
    if first < 0 or second < first:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof or any(len(p) != 32 for p in proof):
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
