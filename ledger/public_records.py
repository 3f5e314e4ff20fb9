"""The public ledger's wire format: one anchored batch's public records, and their check.

A peer's API and an archive file both carry a batch as one JSON document:

    {"format": "provenance-public-batch/2", "index": N, "domain": {...},
     "records": [[kind, attester, subject, refs, payloadHash, issuedAt, expiresAt,
                  signature, fieldHashes, fields], ...]}

Each record is the signed EIP-712 message (its type is fixed by `kind`, its domain is the
batch's), the signature, every field hash and the fields disclosed to the ledger (value
and salt) — never a confidential field. The first format spelled out each record's full
typed data; the type definitions and domain repeated in every record were most of its
1,909 bytes per record (measured on a 4,096-record batch of productions), and building
and parsing them most of a peer's serving time.

Nobody who serves these is trusted: `check_batch` re-derives every UID from the signed
message, checks every signature and every disclosed field against the signed commitment,
and accepts the batch only when the UIDs rebuild exactly the root and count the chain
anchors.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from .eip712 import Attestation, Domain, attestation_uid
from .epcis.keys import KEY_FIELDS, event_key_rows
from .fields import ALWAYS_PUBLIC
from .hashing import hex32, parse_hex
from .ingest import Prepared
from .kinds import Kind
from .merkle import MerkleTree
from .payload import Disclosure
from .signatures import SignatureChecker
from .store.models import AttestationRefRow, AttestationRow, BatchRow
from .store.rows import RECORD_COLUMNS, SIGNED_COLUMNS, in_batch

FORMAT = "provenance-public-batch/2"
RECORD_FIELDS = 10

# json.dumps(..., sort_keys=True) builds a new encoder on every call; this one is built once.
_sorted_json = json.JSONEncoder(sort_keys=True).encode
_EPCIS_KEY_FIELDS = frozenset(KEY_FIELDS)
_NONE: frozenset[str] = frozenset()

# (what, detail): WITHHELD, ADDED or FORGED, and why (see ledger.mirror.PeerProblem).
Fault = tuple[str, str]


def encode_batch(session: Session, index: int, domain: Domain) -> bytes | None:
    """The JSON document of the batch anchored at chain index `index`, from the store's
    rows, or None when this node holds no such batch. The stored JSON of field hashes and
    disclosed fields is copied as it is, not parsed and re-encoded: a receiver checks all
    of it anyway, and refuses a document a damaged store made unreadable."""
    batch_id = session.scalar(select(BatchRow.id).where(BatchRow.chain_index == index))
    if batch_id is None:
        return None
    return _document({"index": index}, domain, _records_json(session, in_batch(session, batch_id)))


def encode_direct(session: Session, uid: str, domain: Domain) -> bytes | None:
    """The JSON document of one attestation recorded directly at the contract (its one
    record), or None when this node holds no such directly recorded attestation."""
    held = (AttestationRow.uid == uid.lower()) & AttestationRow.direct_tx.isnot(None)
    records = _records_json(session, held)
    return _document({"direct": uid.lower()}, domain, records) if records else None


def _document(head: dict[str, object], domain: Domain, records: str) -> bytes:
    opening = json.dumps({"format": FORMAT, **head, "domain": domain.to_json()})
    return f'{opening[:-1]},"records":[{records}]}}'.encode()


def _records_json(session: Session, which: ColumnElement[bool]) -> str:
    """The records the condition `which` selects, as the JSON arrays of the format."""
    return ",".join(record for _uid, record in stored_records(session, which))


def stored_records(session: Session, which: ColumnElement[bool]) -> Iterator[tuple[str, str]]:
    """(stored UID, the record as the JSON array of the format) for every row the
    condition `which` selects: what a receiver checks, read from this node's store."""
    refs: dict[str, list[str]] = {}
    for uid, ref in session.execute(
        select(AttestationRefRow.uid, AttestationRefRow.ref)
        .join(AttestationRow, AttestationRow.uid == AttestationRefRow.uid)
        .where(which)
        .order_by(AttestationRefRow.uid, AttestationRefRow.position)
    ):
        refs.setdefault(uid, []).append(ref)
    rows = session.execute(
        select(
            *SIGNED_COLUMNS,
            AttestationRow.signature,
            AttestationRow.field_hashes,
            AttestationRow.disclosed,
        ).where(which)
    )
    dumps = json.dumps
    for uid, kind, attester, subject, payload, issued, expires, signature, hashes, disclosed in rows:
        yield (
            uid,
            (
                f"[{kind},{dumps(attester)},{dumps(subject)},{dumps(refs.get(uid, []))},{dumps(payload)},"
                f"{issued},{expires},{dumps(signature)},{hashes},{disclosed}]"
            ),
        )


def decode_record(item: object) -> tuple[Attestation, bytes, Disclosure]:
    """The signed message, signature and disclosure of one record, parsed as strictly as a
    submission's (the same parsers); ValueError names the problem."""
    if not isinstance(item, list) or len(item) != RECORD_FIELDS:
        raise ValueError(f"a record is an array of {RECORD_FIELDS} values")
    kind, attester, subject, refs, payload_hash, issued_at, expires_at, signature, hashes, fields = item
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise ValueError("kind: expected an integer")
    attestation = Attestation.from_values(Kind(kind), attester, subject, refs, payload_hash, issued_at, expires_at)
    disclosure = Disclosure.from_json({"fieldHashes": hashes, "fields": fields})
    return attestation, parse_hex(signature, 65, "signature"), disclosure


def check_batch(
    domain: Domain, checker: SignatureChecker, document: object, root: str, count: int
) -> list[Prepared] | Fault:
    """The batch's records, each checked, when they rebuild `root` and `count` exactly;
    else (what, detail) naming the server's fault."""
    records = _records_of(document, domain)
    if isinstance(records, tuple):
        return records
    # Counted before anything is checked: a record costs a parse, hashes and a signature
    # check (an ERC-1271 call for a wallet), so a peer must not get more of them checked
    # than the chain anchors. An honest node serves each of its records once.
    if len(records) < count:
        return "WITHHELD", f"{len(records)} records served, the chain anchors {count}"
    if len(records) > count:
        return "ADDED", f"{len(records)} records served, the chain anchors {count}"
    prepared: dict[str, Prepared] = {}
    for position, item in enumerate(records):
        checked = _checked_record(domain, checker, item, position)
        if isinstance(checked, tuple):
            return checked
        prepared[hex32(checked.uid)] = checked
    if len(prepared) < count:
        return "WITHHELD", f"{len(prepared)} distinct records served, the chain anchors {count}"
    if len(prepared) > count:
        return "ADDED", f"{len(prepared)} distinct records served, the chain anchors {count}"
    rebuilt = hex32(MerkleTree.of([p.uid for p in prepared.values()]).root)
    if rebuilt != root:
        return "FORGED", f"the records rebuild root {rebuilt}, the chain holds {root}"
    return list(prepared.values())


def check_direct(
    domain: Domain, checker: SignatureChecker, document: object, uid: str, attester: str
) -> Prepared | Fault:
    """The one record of a directly recorded attestation, checked, when it is the
    attestation `uid` the chain recorded for `attester`; else the server's fault."""
    records = _records_of(document, domain)
    if isinstance(records, tuple):
        return records
    if len(records) != 1:
        return "FORGED", f"{len(records)} records served for one directly recorded attestation"
    checked = _checked_record(domain, checker, records[0], 0)
    if isinstance(checked, tuple):
        return checked
    if hex32(checked.uid) != uid.lower():
        return "FORGED", f"the record served is {hex32(checked.uid)}, not {uid.lower()}"
    if checked.attestation.attester.lower() != attester.lower():
        return "FORGED", f"{uid}: signed by {checked.attestation.attester}, the chain recorded {attester}"
    return checked


def _records_of(document: object, domain: Domain) -> list[object] | Fault:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return "FORGED", f"not a public ledger document (format must be {FORMAT!r})"
    try:
        served_domain = Domain.from_json(document.get("domain"))
    except ValueError as exc:
        return "FORGED", f"domain: {exc}"
    if served_domain != domain:
        return "FORGED", "the records are signed for another ledger"
    records = document.get("records")
    if not isinstance(records, list):
        return "FORGED", "no record list"
    return records


def _checked_record(domain: Domain, checker: SignatureChecker, item: object, position: int) -> Prepared | Fault:
    """One served record: parsed, its UID derived, its signature and every disclosed
    field checked against what was signed."""
    try:
        attestation, signature, disclosure = decode_record(item)
    except ValueError as exc:
        return "FORGED", f"record {position}: {exc}"
    uid = attestation_uid(attestation, domain)
    try:
        signature_ok = checker.check_digest(uid, attestation.attester, signature).valid
    except Exception:  # noqa: BLE001 - a wallet that cannot answer: the record cannot be accepted
        signature_ok = False
    if not signature_ok:
        return "FORGED", f"{hex32(uid)}: the signature does not belong to {attestation.attester}"
    problems = disclosure.problems(attestation.payload_hash)
    if problems:
        return "FORGED", f"{hex32(uid)}: {'; '.join(problems)}"
    withheld = sorted(ALWAYS_PUBLIC.get(attestation.kind, _NONE).difference(disclosure.fields))
    if withheld:
        return (
            "WITHHELD",
            f"{hex32(uid)}: {', '.join(withheld)} withheld, which a {attestation.kind.type_name} always publishes",
        )
    return Prepared(attestation, uid, signature, disclosure, frozenset())


def check_stored(domain: Domain, checker: SignatureChecker, uid: str, record: str) -> Prepared | Fault:
    """A record read back from this node's store (see `stored_records`), checked as a
    peer's would be, and against the UID its row is stored (and anchored) under: an
    edited row no longer derives that UID."""
    try:
        item = json.loads(record)
    except ValueError as exc:
        return "FORGED", f"{uid}: the stored row is unreadable ({exc})"
    checked = _checked_record(domain, checker, item, 0)
    if not isinstance(checked, tuple) and hex32(checked.uid) != uid:
        return "FORGED", f"{uid}: the stored row derives UID {hex32(checked.uid)}, not the one it is stored under"
    return checked


# The columns of a mirrored attestation row, in the order `BatchRows.attestations` holds
# them; the writer adds `batch_id` and `direct_tx` after them.
ATTESTATION_COLUMNS = (*RECORD_COLUMNS, "received_at")
REF_COLUMNS = ("uid", "position", "ref", "kind")
WATCHLIST_CLASS_COLUMNS = ("uid", "goods_class")
EPCIS_EVENT_COLUMNS = ("uid", "key_hash", "attester")


@dataclass
class BatchRows:
    """A checked batch as the rows that store it: tuples of plain values in the order of
    `ATTESTATION_COLUMNS` (no batch yet), `REF_COLUMNS`, `WATCHLIST_CLASS_COLUMNS` and
    `EPCIS_EVENT_COLUMNS`, each row's UID first. Tuples, not dicts: they are pickled in a
    checking process and unpickled in the one that writes, and handed to the database
    driver positionally (a dict row repeated its 16 keys and made the driver look each
    one up by name)."""

    attestations: list[tuple[Any, ...]] = field(default_factory=list)
    refs: list[tuple[Any, ...]] = field(default_factory=list)
    watchlist_classes: list[tuple[Any, ...]] = field(default_factory=list)
    epcis_events: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def uids(self) -> list[str]:
        return [row[0] for row in self.attestations]

    def without(self, uids: Container[str]) -> BatchRows:
        """The same rows less those of the records `uids`."""
        return BatchRows(
            [r for r in self.attestations if r[0] not in uids],
            [r for r in self.refs if r[0] not in uids],
            [r for r in self.watchlist_classes if r[0] not in uids],
            [r for r in self.epcis_events if r[0] not in uids],
        )


def batch_rows(records: list[Prepared], domain: Domain, now: float) -> BatchRows:
    """The rows of checked public records (nothing confidential: nothing is sealed), the
    same values `ledger.ingest.attestation_row` and its companions give (a test compares
    them), built in one pass."""
    out = BatchRows()
    attestations, refs, classes, events = out.attestations, out.refs, out.watchlist_classes, out.epcis_events
    chain_id, contract = domain.chain_id, domain.verifying_contract.lower()
    dumps = json.dumps
    for item in records:
        a, disclosure = item.attestation, item.disclosure
        uid = "0x" + item.uid.hex()
        kind = int(a.kind)
        attester = a.attester.lower()
        fields = disclosure.fields
        attestations.append(
            (
                uid,
                kind,
                attester,
                "0x" + a.subject.hex(),
                "0x" + a.payload_hash.hex(),
                a.issued_at,
                a.expires_at,
                "0x" + item.signature.hex(),
                chain_id,
                contract,
                dumps(sorted(["0x" + h.hex() for h in disclosure.field_hashes])),
                _sorted_json({n: {"value": f.value, "salt": "0x" + f.salt.hex()} for n, f in fields.items()}),
                None,
                now,
            )
        )
        for position, ref in enumerate(a.refs):
            refs.append((uid, position, "0x" + ref.hex(), kind))
        if a.kind is Kind.WATCHLIST:
            classes.extend((uid, goods_class) for goods_class in sorted(set(disclosure.value("goodsClasses", []))))
        if not _EPCIS_KEY_FIELDS.isdisjoint(fields):
            public = {n: f.value for n, f in fields.items()}
            events.extend((r["uid"], r["key_hash"], r["attester"]) for r in event_key_rows(uid, attester, public))
    return out
