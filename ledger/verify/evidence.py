"""The evidence behind a shipment: its attestations and their anchors, gathered from the
store (a shipment id) or from a proof bundle presented at the border.

Besides the shipment's own history (everything it references, transitively), evidence
holds what refers to that history — acceptances, competing hand-overs of the same goods,
revocations, customs findings, other productions under the same licence — and the
rights holders' watch lists, because those are what reveal forks, revocations and
unlicensed goods.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ledger.eip712 import Attestation, Domain, parse_typed_data
from ledger.hashing import hex32, parse_hex
from ledger.kinds import Kind
from ledger.payload import Disclosure

BUNDLE_FORMAT = "provenance-ledger/proof-bundle@1"


class EvidenceError(ValueError):
    """The evidence could not be read (unknown shipment, malformed bundle)."""


@dataclass
class Record:
    """One attestation as evidence."""

    uid: str
    attestation: Attestation
    domain: Domain
    signature: bytes
    disclosure: Disclosure
    anchor: dict[str, Any] | None
    typed_data: dict[str, Any]

    @property
    def kind(self) -> Kind:
        return self.attestation.kind

    @property
    def attester(self) -> str:
        return self.attestation.attester

    @property
    def refs(self) -> list[str]:
        return [hex32(r) for r in self.attestation.refs]

    def field(self, name: str, default: Any = None) -> Any:
        return self.disclosure.value(name, default)

    def to_bundle_entry(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "typedData": self.typed_data,
            "signature": "0x" + self.signature.hex(),
            "payload": self.disclosure.to_json(),
            "anchor": self.anchor,
        }


@dataclass
class Evidence:
    """The records of one shipment's case file."""

    shipment: str
    records: dict[str, Record]
    missing: set[str] = field(default_factory=set)
    # uid -> uids of on-chain revocations (found on chain, beyond the records)
    chain_revocations: dict[str, set[str]] = field(default_factory=dict)
    _children: dict[str, list[str]] | None = None

    def children(self, uid: str) -> list[Record]:
        """Records that reference `uid`."""
        if self._children is None:
            index: dict[str, list[str]] = defaultdict(list)
            for record in self.records.values():
                for ref in record.refs:
                    index[ref].append(record.uid)
            self._children = dict(index)
        return [self.records[u] for u in self._children.get(uid, [])]

    def of_kind(self, kind: Kind) -> list[Record]:
        return [r for r in self.records.values() if r.kind is kind]

    def to_bundle(self, deployment: dict[str, Any], created_at: int) -> dict[str, Any]:
        """The self-contained JSON proof bundle of this evidence."""
        return {
            "format": BUNDLE_FORMAT,
            "createdAt": created_at,
            "shipment": self.shipment,
            "deployment": deployment,
            "attestations": [r.to_bundle_entry() for r in sorted(self.records.values(), key=lambda r: r.uid)],
        }


def record_from_json(entry: object) -> Record:
    """A record from one bundle entry; raises EvidenceError naming the problem."""
    if not isinstance(entry, dict):
        raise EvidenceError("bundle attestation: expected an object")
    try:
        attestation, domain = parse_typed_data(entry.get("typedData"))
        signature = parse_hex(entry.get("signature"), 65, "signature")
        disclosure = Disclosure.from_json(entry.get("payload"))
    except ValueError as exc:
        raise EvidenceError(f"bundle attestation {entry.get('uid')!r}: {exc}") from None
    uid = entry.get("uid")
    if not isinstance(uid, str):
        raise EvidenceError("bundle attestation: missing uid")
    anchor = entry.get("anchor")
    if anchor is not None and not isinstance(anchor, dict):
        raise EvidenceError(f"bundle attestation {uid}: anchor must be an object")
    return Record(uid.lower(), attestation, domain, signature, disclosure, anchor, entry["typedData"])


def evidence_from_bundle(bundle: object) -> Evidence:
    """Evidence from a proof bundle (as presented by an exporter)."""
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise EvidenceError(f"not a proof bundle (format must be {BUNDLE_FORMAT!r})")
    entries = bundle.get("attestations")
    if not isinstance(entries, list) or not entries:
        raise EvidenceError("bundle has no attestations")
    records = {}
    for entry in entries:
        record = record_from_json(entry)
        records[record.uid] = record
    shipment = str(bundle.get("shipment", "")).lower()
    if shipment not in records:
        raise EvidenceError("the bundle's shipment is not among its attestations")
    evidence = Evidence(shipment, records)
    evidence.missing = _missing_ancestors(evidence)
    return evidence


def _missing_ancestors(evidence: Evidence) -> set[str]:
    missing, seen, frontier = set(), set(), [evidence.shipment]
    while frontier:
        uid = frontier.pop()
        if uid in seen:
            continue
        seen.add(uid)
        record = evidence.records.get(uid)
        if record is None:
            missing.add(uid)
            continue
        frontier.extend(record.refs)
    return missing


def evidence_from_store(ledger: Any, shipment_uid: str) -> Evidence:
    """Evidence for a shipment recorded in `ledger`'s store (a `ledger.core.Ledger`).

    Three round trips whatever the number of hops: the shipment's whole history by one
    recursive query, what refers to that history, and the rows with their batches.
    """
    from sqlalchemy import literal, union

    from ledger.store.models import AttestationRefRow, AttestationRow

    shipment_uid = shipment_uid.lower()
    with ledger.sessions() as session:
        # Ancestors: everything the shipment rests on, transitively.
        history = select(literal(shipment_uid).label("uid")).cte("history", recursive=True)
        history = history.union(
            select(AttestationRefRow.ref.label("uid")).join(history, AttestationRefRow.uid == history.c.uid)
        )
        ancestors = set(session.scalars(select(history.c.uid)))
        # What refers to the history (acceptances, forks, revocations, findings, sibling
        # productions under the same licences), what refers to those, and watch lists.
        first = select(AttestationRefRow.uid).where(AttestationRefRow.ref.in_(ancestors))
        second = select(AttestationRefRow.uid).where(AttestationRefRow.ref.in_(first))
        watch = select(AttestationRow.uid).where(AttestationRow.kind == int(Kind.WATCHLIST))
        related = set(session.scalars(union(first, second, watch)))
        wanted = ancestors | related
        rows = session.scalars(select(AttestationRow).where(AttestationRow.uid.in_(wanted))).all()
        refs = session.execute(
            select(AttestationRefRow.uid, AttestationRefRow.ref, AttestationRefRow.position).where(
                AttestationRefRow.uid.in_(wanted)
            )
        ).all()
    by_uid: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in refs:
        by_uid[r.uid].append((r.position, r.ref))
    batches = ledger.batches_by_id({row.batch_id for row in rows if row.batch_id is not None})
    records = {
        row.uid: _record_from_row(ledger, row, [ref for _p, ref in sorted(by_uid.get(row.uid, []))], batches)
        for row in rows
    }
    if shipment_uid not in records:
        raise EvidenceError(f"unknown shipment {shipment_uid}")
    if records[shipment_uid].kind is not Kind.SHIPMENT:
        raise EvidenceError(f"{shipment_uid} is a {records[shipment_uid].kind.type_name}, not a Shipment")
    evidence = Evidence(shipment_uid, records)
    evidence.missing = _missing_ancestors(evidence)
    return evidence


def _record_from_row(ledger: Any, row: Any, refs: list[str], batches: dict[int, Any]) -> Record:
    from ledger.store.rows import attestation_from_row

    attestation = attestation_from_row(row, refs)
    domain = Domain(row.chain_id, row.contract)
    fields = json.loads(row.disclosed)
    if row.sealed is not None:
        fields.update(ledger.sealer.open(row.sealed, parse_hex(row.uid, 32, "uid")))
    disclosure = Disclosure.from_json({"fieldHashes": json.loads(row.field_hashes), "fields": fields})
    anchor = ledger.anchor_from(row.uid, row.batch_id, row.direct_tx, batches.get(row.batch_id))
    anchor_json: dict[str, Any] | None
    if anchor.status == "direct":
        anchor_json = {"type": "direct", "txHash": anchor.tx_hash}
    elif anchor.batch_index is not None:
        anchor_json = {
            "type": "batch",
            "batchIndex": anchor.batch_index,
            "root": anchor.root,
            "proof": list(anchor.proof),
            "txHash": anchor.tx_hash,
            "blockNumber": anchor.block_number,
        }
    else:
        anchor_json = None
    from ledger.eip712 import typed_data

    return Record(
        row.uid,
        attestation,
        domain,
        parse_hex(row.signature, 65, "signature"),
        disclosure,
        anchor_json,
        typed_data(attestation, domain),
    )
