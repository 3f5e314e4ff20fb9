"""What an EPCIS import plans: the parties and goods classes it is told, the custody
records it rests on, the attestations it will have signed, and how it is refused.
Shared by the importer (public surface) and the planner (the mapping itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from ..gs1 import parse_key
from ..kinds import Kind

COUNT_UNIT = "EA"  # a quantity without uom counts instances (UN/ECE Rec. 20 "each")
PLANNED = "planned:"


@dataclass(frozen=True)
class Party:
    """A supply-chain party as the ledger knows it: its signing address, its country."""

    address: str
    country: str | None = None


@dataclass
class ImportContext:
    """What an EPCIS document does not say but the ledger needs: who the parties named by
    GS1 keys (PGLN / GLN / SGLN) are, and the HS goods class of each GTIN."""

    parties: dict[str, Party] = field(default_factory=dict)
    goods_classes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parties = {parse_key(k).canonical: v for k, v in self.parties.items()}
        self.goods_classes = {gtin_of(parse_key(k).class_key): v for k, v in self.goods_classes.items()}


@dataclass(frozen=True)
class CustodyRecord:
    """A custody-relevant attestation as the planner sees it (stored or planned)."""

    uid: str
    kind: Kind
    attester: str
    lot: str | None
    quantity: Fraction
    refs: tuple[str, ...]
    to: str | None = None

    @property
    def holder_after(self) -> str:
        return (self.to if self.kind is Kind.TRANSFER and self.to else self.attester).lower()


class CustodyIndex(Protocol):
    """The ledger's records, as far as the planner needs them."""

    def lot_records(self, lot: str) -> list[CustodyRecord]:
        """Attestations about `lot` and those referencing them, oldest first."""
        ...

    def recorded(self, event_key: str, attester: str) -> list[str]:
        """UIDs of attestations by `attester` already recording the EPCIS event `event_key`."""
        ...

    def kinds(self, uids: list[str]) -> set[Kind]:
        """The kinds of the stored attestations `uids`."""
        ...


@dataclass
class PlannedAttestation:
    """One attestation to sign: `refs` hold UIDs or `planned:<n>` for earlier plan items."""

    event_key: str
    rule: str
    kind: Kind
    subject: str
    fields: dict[str, Any]
    refs: list[str]


@dataclass
class ImportPlan:
    signer: str
    items: list[PlannedAttestation]
    already_recorded: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "attestations": [
                {
                    "eventKey": p.event_key,
                    "rule": p.rule,
                    "kind": p.kind.type_name,
                    "subject": p.subject,
                    "fields": p.fields,
                    "refs": p.refs,
                }
                for p in self.items
            ],
            "alreadyRecorded": self.already_recorded,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ImportPlan:
        """The plan as `to_json` wrote it (the API's `/v1/epcis/map` answer); KeyError or
        ValueError when it is not one."""
        return cls(
            body["signer"],
            [
                PlannedAttestation(
                    a["eventKey"], a["rule"], Kind.from_type_name(a["kind"]), a["subject"], a["fields"], a["refs"]
                )
                for a in body["attestations"]
            ],
            body["alreadyRecorded"],
        )


class ImportRefused(ValueError):
    """The document records nothing: `problems` lists (event key, reason) for each event
    that cannot be mapped (or one ("document", reason) when the document is malformed)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in problems))


class Unmappable(ValueError):
    """One event cannot be mapped; the message says why."""


def gtin_of(class_key: str) -> str:
    """The canonical GTIN URI of a class key (GTIN + lot → GTIN); other keys as they are."""
    parts = class_key.split("/")
    if len(parts) >= 5 and parts[3] == "01":
        return "/".join(parts[:5])
    return class_key
