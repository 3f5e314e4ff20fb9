"""Our Merkle tree is @openzeppelin/merkle-tree's StandardMerkleTree (bytes32 leaves)."""

from __future__ import annotations

import json
import random
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.hashing import hex32
from ledger.merkle import MerkleTree, consistent_root, leaf_position, path_from_nodes, tree_nodes, verify_proof

from .conftest import REPO, ReliabilityRecorder, hypothesis_cases


def js_trees(trees: list[list[bytes]]) -> list[dict[str, object]]:
    payload = json.dumps({"trees": [[hex32(u) for u in t] for t in trees]})
    result = subprocess.run(
        ["node", "tests/js/merkle_oracle.js"], input=payload, capture_output=True, text=True, cwd=REPO, check=True
    )
    parsed: list[dict[str, object]] = json.loads(result.stdout)
    return parsed


def test_roots_and_proofs_equal_the_javascript_library_on_random_trees() -> None:
    rng = random.Random(1234)
    sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 100, 257, 1000]
    trees = [[rng.randbytes(32) for _ in range(n)] for n in sizes]
    for uids, js in zip(trees, js_trees(trees), strict=True):
        ours = MerkleTree.of(uids)
        assert hex32(ours.root) == js["root"], f"root differs for {len(uids)} leaves"
        proofs = js["proofs"]
        assert isinstance(proofs, dict)
        for uid in uids:
            assert [hex32(p) for p in ours.proof(uid)] == proofs[hex32(uid)]


def test_every_leaf_proves_and_no_outsider_does(reliability: ReliabilityRecorder) -> None:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True))
    def prop(uids: list[bytes]) -> None:
        tree = MerkleTree.of(uids)
        for uid in uids:
            assert verify_proof(tree.root, uid, tree.proof(uid))
        outsider = bytes(32) if bytes(32) not in uids else b"\x01" * 32
        if outsider not in uids:
            assert not verify_proof(tree.root, outsider, tree.proof(uids[0]))

    reliability.record(
        "property",
        "Merkle tree: random leaf sets of 1-70 (hypothesis)",
        hypothesis_cases(prop),
        "every leaf proves; an outsider never does",
    )


def test_duplicates_and_empty_trees_are_refused() -> None:
    uid = b"\x05" * 32
    for bad in ([], [uid, uid]):
        try:
            MerkleTree.of(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {len(bad)} leaves")


def test_a_kept_tree_gives_every_leaf_its_proof_and_is_consistent_only_unedited(
    reliability: ReliabilityRecorder,
) -> None:
    """What verification reads from a batch's kept tree (`tree_nodes`): each leaf's place
    and path are the tree's own proof, and the tree hashes up to its root; any one node
    changed, and it never hashes up to that root (so a path read from it is checked on its
    own again)."""

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True),
        st.integers(min_value=0),
        st.integers(min_value=0, max_value=31),
    )
    def prop(uids: list[bytes], pick: int, byte: int) -> None:
        tree = MerkleTree.of(uids)
        nodes = tree_nodes(tree)
        assert consistent_root(nodes) == tree.root
        for uid in uids:
            assert path_from_nodes(nodes, leaf_position(nodes, uid)) == tree.proof(uid)
        edited = bytearray(nodes)
        at = (pick % len(tree.nodes)) * 32 + byte
        edited[at] ^= 0x01
        # One leaf is its own root: edited, it is another root, never this one.
        assert consistent_root(bytes(edited)) == (None if len(uids) > 1 else bytes(edited))

    reliability.record(
        "property",
        "Kept Merkle tree: random leaf sets of 1-70, one byte of one node flipped (hypothesis)",
        hypothesis_cases(prop),
        "paths equal the tree's proofs; the unedited tree is consistent, an edited one never with its root",
    )
