"""Our Merkle tree is @openzeppelin/merkle-tree's StandardMerkleTree (bytes32 leaves)."""

from __future__ import annotations

import json
import random
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.hashing import hex32
from ledger.merkle import MerkleTree, verify_proof

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
