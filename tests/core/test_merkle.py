"""RFC 6962 Merkle math: published vectors, and proofs for every index and size up to 300."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_from_leaves,
    split_point,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's RFC 6962 reference leaves and tree heads (sizes 0..8).
CT_DATA = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}

MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962's definition, recursively: the reference the fast code is checked against."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


@cache
def node(a: int, b: int) -> bytes:
    return mth(LEAVES[a:b])


@cache
def root(size: int) -> bytes:
    return mth(LEAVES[:size])


def test_ct_reference_roots() -> None:
    leaves = [leaf_hash(d) for d in CT_DATA]
    for size, want in enumerate(CT_ROOTS):
        assert root_from_leaves(leaves[:size]).hex() == want
        assert mth(leaves[:size]).hex() == want


def test_ct_reference_inclusion_proofs() -> None:
    leaves = [leaf_hash(d) for d in CT_DATA]
    ref = bytes.fromhex(CT_ROOTS[8])
    for (index, size), want in CT_INCLUSION.items():
        proof = inclusion_proof(index, size, lambda a, b: mth(leaves[a:b]))
        assert [p.hex() for p in proof] == want
        assert verify_inclusion(leaves[index], index, size, proof, ref)


def test_frontier_matches_definition_and_names_completed_nodes() -> None:
    frontier = Frontier()
    for size in range(1, 130):
        completed = frontier.append(LEAVES[size - 1])
        assert frontier.root() == root(size)
        for level, idx, h in completed:
            assert h == node(idx << level, (idx + 1) << level)
        assert [h for _, _, h in frontier.subtrees()] == [
            node(idx << level, (idx + 1) << level) for level, idx in perfect_subtrees(0, size)
        ]


def test_subtree_hash_from_perfect_nodes() -> None:
    def perfect(level: int, idx: int) -> bytes:
        return node(idx << level, (idx + 1) << level)

    for size in range(1, 70):
        assert subtree_hash(0, size, perfect) == root(size)


def test_frontier_refuses_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match="hashes"):
        Frontier(3, [LEAVES[0]])


def test_every_inclusion_proof_verifies_up_to_max_size() -> None:
    for size in range(1, MAX_SIZE + 1):
        for index in range(size):
            proof = inclusion_proof(index, size, node)
            assert verify_inclusion(LEAVES[index], index, size, proof, root(size)), (index, size)


def test_every_consistency_proof_verifies_up_to_max_size() -> None:
    for second in range(1, MAX_SIZE + 1):
        for first in range(second + 1):
            proof = consistency_proof(first, second, node)
            assert verify_consistency(first, second, root(first), root(second), proof), (
                first,
                second,
            )


def _proof_from(known: dict[tuple[int, int], bytes], first: int, second: int) -> list[bytes]:
    def perfect(level: int, idx: int) -> bytes:
        return known[(level, idx)]  # a KeyError if the proof needs any other node

    return consistency_proof(first, second, lambda a, b: subtree_hash(a, b, perfect))


def test_consistency_proofs_need_only_the_old_frontier_and_the_new_leaves() -> None:
    # The checkpointer builds proofs from the previous frontier plus the nodes the new leaves
    # complete; no other node may be asked for.
    for second in range(2, 140):
        for first in range(1, second):
            old = Frontier()
            for leaf in LEAVES[:first]:
                old.append(leaf)
            known = {(lv, ix): h for lv, ix, h in old.subtrees()}
            tree = old.copy()
            for i in range(first, second):
                known[(0, i)] = LEAVES[i]
                known.update({(lv, ix): h for lv, ix, h in tree.append(LEAVES[i])})
            assert _proof_from(known, first, second) == consistency_proof(first, second, node)


sizes = st.integers(min_value=1, max_value=MAX_SIZE)


def _flip(digest: bytes, bit: int) -> bytes:
    return bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(digest))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), size=sizes)
def test_an_altered_inclusion_proof_fails(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(index, size, node)
    assert verify_inclusion(LEAVES[index], index, size, proof, root(size))
    if not proof:
        assert size == 1
        assert not verify_inclusion(LEAVES[1], 0, 1, proof, root(1))
        return
    bit = data.draw(st.integers(min_value=0, max_value=255))
    for which in range(len(proof)):  # altering any one hash of the proof breaks it
        altered = list(proof)
        altered[which] = _flip(proof[which], bit)
        assert not verify_inclusion(LEAVES[index], index, size, altered, root(size))
    # Nor does the right proof for a wrong leaf, index, size or root, or a shortened proof.
    other = LEAVES[(index + 1) % MAX_SIZE]
    assert not verify_inclusion(other, index, size, proof, root(size))
    assert not verify_inclusion(LEAVES[index], index, size, proof[:-1], root(size))
    assert not verify_inclusion(LEAVES[index], index, size, [*proof, proof[0]], root(size))
    assert not verify_inclusion(LEAVES[index], index, size, proof, root(size - 1 or 2))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), second=st.integers(min_value=2, max_value=MAX_SIZE))
def test_an_altered_consistency_proof_fails(data: st.DataObject, second: int) -> None:
    first = data.draw(st.integers(min_value=1, max_value=second - 1))
    proof = consistency_proof(first, second, node)
    assert verify_consistency(first, second, root(first), root(second), proof)
    bit = data.draw(st.integers(min_value=0, max_value=255))
    for which in range(len(proof)):  # altering any one hash of the proof breaks it
        altered = list(proof)
        altered[which] = _flip(proof[which], bit)
        assert not verify_consistency(first, second, root(first), root(second), altered)
    assert not verify_consistency(first, second, root(first), root(second), proof[:-1])
    assert not verify_consistency(first, second, root(first), node(0, second - 1), proof)
    assert not verify_consistency(first, second, root(second), root(second), proof)


def test_edge_cases() -> None:
    assert verify_consistency(0, 5, EMPTY_ROOT, root(5), [])
    assert verify_consistency(5, 5, root(5), root(5), [])
    assert not verify_consistency(5, 5, root(5), root(6), [])
    assert not verify_consistency(5, 4, root(5), root(4), [])
    assert not verify_consistency(3, 5, root(3), root(5), [])
    assert not verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(LEAVES[5], 5, 5, [], root(5))
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(5, 5, node)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(6, 5, node)
