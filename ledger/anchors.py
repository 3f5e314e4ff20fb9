"""Where an attestation is anchored, as the store knows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AnchorRef:
    """Where an attestation is anchored: its batch and Merkle proof, or a direct record."""

    status: str  # "pending", "sealed", "sent", "anchored", "direct"
    batch_index: int | None = None
    root: str | None = None
    proof: tuple[str, ...] = ()
    tx_hash: str | None = None
    block_number: int | None = None
    # The batch's tree as the store keeps it (`merkle.tree_nodes`) and the index of the
    # attestation's leaf in it: the proof is the path from that leaf. As untrusted as the row.
    tree: bytes | None = field(default=None, repr=False, compare=False)
    leaf: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "batchIndex": self.batch_index,
            "root": self.root,
            "proof": list(self.proof),
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
        }


@dataclass(frozen=True)
class BatchFacts:
    """What an inclusion proof needs of a stored batch (a `BatchRow`, or the same columns
    read with the attestation they anchor)."""

    id: int
    chain_index: int
    root: str
    status: str
    tx_hash: str | None
    block_number: int | None
