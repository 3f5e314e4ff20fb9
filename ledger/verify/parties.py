"""Parties by name as well as address, and only with a name the chain vouches for.

The registry stores a participant's id, keccak256 of the name it was admitted under
(`provenance participant admit --name`); the registrar publishes the name itself on chain
(`ParticipantNamed`, refused by the contract unless it hashes to the id, and checked again
when read). A name comes from there and nowhere else — not from the evidence, not from
the node's database — so an exporter cannot present itself under another name. A party
whose name was never published, or whose chain could not be read, is shown by address
with "name unknown", never under a name that was not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ledger.chain.view import ChainSnapshot
from ledger.hashing import checksum_address
from ledger.kinds import Kind

from .evidence import Evidence

NOT_PUBLISHED = "name unknown: none published on chain"
NOT_READ = "name unknown: the chain could not be read"


@dataclass(frozen=True)
class Party:
    """One address, with its on-chain name when there is one."""

    address: str
    name: str | None  # None: unknown (never a name the chain did not vouch for)
    unknown_why: str = NOT_PUBLISHED

    def __str__(self) -> str:
        return f"{self.name} ({self.address})" if self.name is not None else f"{self.address} ({self.unknown_why})"

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "nameVerified": self.name is not None,
            "shown": str(self),
        }


def party(snapshot: ChainSnapshot | None, address: str) -> Party:
    """`address` (checksummed) with the name its participant published on chain; unknown
    without a snapshot of the chain."""
    try:
        shown = checksum_address(address)  # cached: the same parties recur in every verdict
    except ValueError:
        shown = address
    if snapshot is None:
        return Party(shown, None, NOT_READ)
    return Party(shown, snapshot.participant_name(address) if shown else None)


def parties_of(evidence: Evidence) -> list[str]:
    """Every address the evidence names as a party: signers and transfer recipients, in
    first-seen order (lowercase, once each)."""
    seen: dict[str, None] = {}
    for record in evidence.records.values():
        seen.setdefault(record.attester.lower(), None)
        if record.kind is Kind.TRANSFER:
            to = record.field("to")
            if isinstance(to, str) and to:
                seen.setdefault(to.lower(), None)
    return list(seen)


def parties_json(snapshot: ChainSnapshot | None, addresses: Iterable[str]) -> list[dict[str, Any]]:
    """The parties section of a verdict: each address with its verified name or none."""
    return [party(snapshot, a).to_json() for a in addresses]
