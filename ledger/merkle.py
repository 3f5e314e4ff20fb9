"""Merkle trees of attestation UIDs, compatible with `@openzeppelin/merkle-tree`.

Reproduces `StandardMerkleTree.of(uids.map(u => [u]), ["bytes32"])` exactly (default
options: leaves sorted): the same root, the same proofs, so proofs made here verify
with that library and with the ledger contract's `verifyInclusion`, and the other way
round. `tests/test_merkle.py` compares both on random trees.

Layout (as in the library): leaves are double-hashed
`keccak256(keccak256(abi.encode(uid)))`, sorted, and stored at the end of an array of
2n-1 nodes in reverse order; node i is the hash of its children 2i+1 and 2i+2, each
pair hashed in sorted order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .hashing import keccak


def leaf_hash(uid: bytes) -> bytes:
    """The leaf of `uid` (leaf type bytes32: abi.encode(uid) is uid itself)."""
    return keccak(keccak(uid))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True)
class MerkleTree:
    """A tree over `uids`; `root`, `proof(uid)` and `verify` as in the JS library."""

    nodes: tuple[bytes, ...]
    positions: dict[bytes, int]  # uid -> index in `nodes`

    @classmethod
    def of(cls, uids: Sequence[bytes]) -> MerkleTree:
        if not uids:
            raise ValueError("a Merkle tree needs at least one leaf")
        if len(set(uids)) != len(uids):
            raise ValueError("duplicate UID in a Merkle tree")
        hashed = sorted((leaf_hash(u), u) for u in uids)
        n = len(hashed)
        nodes: list[bytes] = [b""] * (2 * n - 1)
        positions: dict[bytes, int] = {}
        for i, (leaf, uid) in enumerate(hashed):
            index = len(nodes) - 1 - i
            nodes[index] = leaf
            positions[uid] = index
        for i in range(len(nodes) - 1 - n, -1, -1):
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        return cls(tuple(nodes), positions)

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def __len__(self) -> int:
        return len(self.positions)

    def proof(self, uid: bytes) -> list[bytes]:
        """Sibling hashes from the leaf of `uid` up to the root."""
        try:
            index = self.positions[uid]
        except KeyError:
            raise KeyError(f"UID 0x{uid.hex()} is not in this tree") from None
        proof: list[bytes] = []
        while index > 0:
            sibling = index - 1 if index % 2 == 0 else index + 1
            proof.append(self.nodes[sibling])
            index = (index - 1) // 2
        return proof


def tree_nodes(tree: MerkleTree) -> bytes:
    """The tree's nodes as one byte string (32 bytes each, root first): what the store keeps
    so that proofs never need the tree rebuilt."""
    return b"".join(tree.nodes)


def leaf_position(nodes: bytes, uid: bytes) -> int:
    """The index in `nodes` (a tree kept as `tree_nodes`) of the leaf of `uid`, found by
    binary search over the sorted leaves (no hashing beyond the one leaf hash); its proof
    is `path_from_nodes(nodes, index)`. Raises KeyError if absent, ValueError when
    `nodes` is not a whole number of 32-byte nodes."""
    count = len(nodes) // 32
    if count == 0 or len(nodes) % 32:
        raise ValueError("not a stored Merkle tree")
    leaves = (count + 1) // 2
    wanted = leaf_hash(uid)
    low, high = 0, leaves  # sorted leaf i sits at node index count - 1 - i
    while low < high:
        middle = (low + high) // 2
        at = (count - 1 - middle) * 32
        if nodes[at : at + 32] < wanted:
            low = middle + 1
        else:
            high = middle
    at = (count - 1 - low) * 32
    if low >= leaves or nodes[at : at + 32] != wanted:
        raise KeyError(f"UID 0x{uid.hex()} is not in this tree")
    return count - 1 - low


def path_from_nodes(nodes: bytes, index: int) -> list[bytes]:
    """The sibling hashes from node `index` of a tree kept as `tree_nodes` up to its root."""
    proof: list[bytes] = []
    while index > 0:
        sibling = (index - 1 if index % 2 == 0 else index + 1) * 32
        proof.append(nodes[sibling : sibling + 32])
        index = (index - 1) // 2
    return proof


def consistent_root(nodes: bytes) -> bytes | None:
    """The root of a tree kept as `tree_nodes` when every inner node is the hash of its two
    children, else None (not a tree). In such a tree the path from any leaf (as
    `path_from_nodes` reads it) is a proof that `verify_proof` accepts for that root: each
    step hashes a node with its sibling into their parent, up to node 0. So the leaves of a
    tree whose consistent root is the root the chain holds are anchored, each proven
    without its path being checked again. One hash per inner node."""
    count = len(nodes) // 32
    if count == 0 or len(nodes) % 32 or count % 2 == 0:
        return None
    for i in range((count - 1) // 2):
        left = (2 * i + 1) * 32
        if nodes[i * 32 : i * 32 + 32] != hash_pair(nodes[left : left + 32], nodes[left + 32 : left + 64]):
            return None
    return nodes[:32]


def verify_proof(root: bytes, uid: bytes, proof: Sequence[bytes]) -> bool:
    """True when `proof` links the leaf of `uid` to `root`."""
    node = leaf_hash(uid)
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root
