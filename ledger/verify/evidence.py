"""The evidence behind a shipment: its attestations and their anchors, gathered from the
store (a shipment id) or from a proof bundle presented at the border.

Besides the shipment's own history (everything it references, transitively), evidence
holds what refers to that history — acceptances, competing hand-overs of the same goods,
revocations, customs findings, other productions under the same licence — and the
rights holders' watch lists, because those are what reveal forks, revocations and
unlicensed goods.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Select, String, cast, func, literal, literal_column, select, union_all

from ledger.anchors import BatchFacts
from ledger.eip712 import Attestation, Domain, parse_typed_data, typed_data
from ledger.hashing import hex32, parse_hex
from ledger.kinds import Kind
from ledger.merkle import path_from_nodes
from ledger.payload import Disclosure, field_hash
from ledger.ports import StoreReader
from ledger.store.rows import RECORD_COLUMNS

BUNDLE_FORMAT = "provenance-ledger/proof-bundle@1"


class EvidenceError(ValueError):
    """The evidence could not be read (unknown shipment, malformed bundle)."""


class StoreCorrupted(EvidenceError):
    """The store's record of the shipment itself cannot be read back (altered or damaged)."""


@dataclass
class Record:
    """One attestation as evidence."""

    uid: str
    attestation: Attestation
    domain: Domain
    signature: bytes
    disclosure: Disclosure
    anchor: dict[str, Any] | None
    # The typed data as presented (a bundle's entry); None for a stored record, whose
    # typed data is made from its attestation only when a bundle is exported.
    presented_typed_data: dict[str, Any] | None
    # Fields the ledger holds encrypted: used by this node's checks, never exported.
    confidential: frozenset[str] = frozenset()
    # A stored record in a batch: the batch's tree as the store keeps it and the index of
    # the record's leaf in it, in place of a proof in `anchor` (the proof is the path from
    # that leaf). As untrusted as the row: the anchoring check proves the leaf from it.
    kept: tuple[bytes, int] | None = field(default=None, repr=False)

    @property
    def typed_data(self) -> dict[str, Any]:
        """The record's full EIP-712 typed data (as presented, for a bundle's record)."""
        if self.presented_typed_data is not None:
            return self.presented_typed_data
        return typed_data(self.attestation, self.domain)

    @property
    def kind(self) -> Kind:
        return self.attestation.kind

    @property
    def attester(self) -> str:
        return self.attestation.attester

    @cached_property
    def refs(self) -> tuple[str, ...]:
        """The UIDs the record references, in order (made once: the checks ask often)."""
        return tuple(hex32(r) for r in self.attestation.refs)

    def field(self, name: str, default: Any = None) -> Any:
        return self.disclosure.value(name, default)

    def to_bundle_entry(self) -> dict[str, Any]:
        """The record as a bundle carries it: never a confidential field's value; a stored
        record's inclusion proof read from its batch's kept tree."""
        public = self.disclosure.restricted_to(set(self.disclosure.fields) - self.confidential)
        anchor = self.anchor
        if anchor is not None and self.kept is not None and "proof" not in anchor:
            proof = [hex32(p) for p in path_from_nodes(*self.kept)]
            anchor = {
                "type": anchor["type"],
                "batchIndex": anchor["batchIndex"],
                "root": anchor["root"],
                "proof": proof,
                "txHash": anchor["txHash"],
                "blockNumber": anchor["blockNumber"],
            }
        return {
            "uid": self.uid,
            "typedData": self.typed_data,
            "signature": "0x" + self.signature.hex(),
            "payload": public.to_json(),
            "anchor": anchor,
        }


@dataclass
class Evidence:
    """The records of one shipment's case file."""

    shipment: str
    records: dict[str, Record]
    missing: set[str] = field(default_factory=set)
    # uid -> why a stored row could not be read back (store path only)
    unreadable: dict[str, str] = field(default_factory=dict)
    # Records as a presenter showed them where the node's own copy is used instead: still
    # integrity-checked, so a tampered bundle is reported even when the store corrects it.
    presented: dict[str, Record] = field(default_factory=dict)
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
        """The self-contained JSON proof bundle of the shipment's history: its records with
        their public fields and proofs. Records of other parties that bear on the verdict
        (watch lists, findings, other hand-overs) are not the holder's to hand out: a
        verifying node completes the evidence from its own copy of the ledger."""
        history, _missing = walk_history(self)
        return {
            "format": BUNDLE_FORMAT,
            "createdAt": created_at,
            "shipment": self.shipment,
            "deployment": deployment,
            "attestations": [self.records[uid].to_bundle_entry() for uid in sorted(history)],
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
    evidence.missing = set(walk_history(evidence)[1])
    return evidence


def walk_history(evidence: Evidence) -> tuple[frozenset[str], frozenset[str]]:
    """The shipment's history — it and every record it rests on, transitively — as
    (uids the evidence holds, uids it references but does not hold)."""
    held: set[str] = set()
    missing: set[str] = set()
    seen: set[str] = set()
    frontier = [evidence.shipment]
    while frontier:
        uid = frontier.pop()
        if uid in seen:
            continue
        seen.add(uid)
        record = evidence.records.get(uid)
        if record is None:
            missing.add(uid)
            continue
        held.add(uid)
        frontier.extend(record.refs)
    return frozenset(held), frozenset(missing)


def evidence_from_store(ledger: StoreReader, shipment_uid: str, conn: Connection | None = None) -> Evidence:
    """Evidence for a shipment recorded in `ledger`'s store (a `ledger.core.Ledger`).

    Two or three statements whatever the number of hops: the shipment's whole history by
    one recursive query; what refers to that history, with the watch-list entries that
    can match the goods and their revocations (by goods-class prefix, through an index:
    never every entry ever made); and, when that found records outside the history, what
    refers to those. Each row comes with its batch and its references. A stored row that
    cannot be read back, or a batch that no longer rebuilds its anchored root, becomes a
    STORE_CORRUPTED finding, not a crash.
    Raises StoreCorrupted when the shipment's own row is unreadable. Read through `conn`
    when given (the caller's transaction), else a session of its own.
    """
    shipment_uid = shipment_uid.lower()
    records, unreadable = _stored_case_file(ledger, {shipment_uid}, set(), conn)
    if shipment_uid in unreadable:
        raise StoreCorrupted(f"{shipment_uid}: {unreadable[shipment_uid]}")
    if shipment_uid not in records:
        raise EvidenceError(f"unknown shipment {shipment_uid}")
    if records[shipment_uid].kind is not Kind.SHIPMENT:
        raise EvidenceError(f"{shipment_uid} is a {records[shipment_uid].kind.type_name}, not a Shipment")
    evidence = Evidence(shipment_uid, records, unreadable=unreadable)
    evidence.missing = set(walk_history(evidence)[1])
    for uid in evidence.missing - set(unreadable):
        # Ingest never stores a record whose references it does not hold: a gap in the
        # store's history is a deleted row, not a gap in custody.
        unreadable[uid] = "referenced by the shipment's history but missing from the store"
    return evidence


def completed_from_store(ledger: StoreReader, presented: Evidence) -> Evidence:
    """A presented bundle's evidence completed from the node's own copy of the ledger.

    What the presenter shows is merged with everything the store holds that bears on it
    — the stored history of the same records, what refers to that history (other
    hand-overs of the lots, productions under the licences, revocations, findings) and
    the watch lists for the goods — so leaving records out of a bundle can never improve
    a verdict. Where both hold a record, the store's copy is used (it carries the fields
    disclosed to the ledger); both are integrity-checked against the same chain. Fields
    the presenter disclosed beyond the ledger's copy (a late disclosure) are added to the
    store's copy when they recompute one of its committed field hashes, so the checks can
    use them; one that does not is left out and the presented record's own integrity
    check reports it (PAYLOAD_MISMATCH).
    """
    history = set(walk_history(presented)[0])
    goods = {
        str(r.field("goodsClass"))
        for uid, r in presented.records.items()
        if uid in history and r.kind in (Kind.SHIPMENT, Kind.PRODUCTION) and isinstance(r.field("goodsClass"), str)
    }
    stored, unreadable = _stored_case_file(ledger, history, goods)
    records = dict(presented.records)
    records.update({uid: _with_late_disclosures(r, presented.records.get(uid)) for uid, r in stored.items()})
    replaced = {uid: r for uid, r in presented.records.items() if uid in stored}
    evidence = Evidence(presented.shipment, records, unreadable=unreadable, presented=replaced)
    evidence.missing = set(walk_history(evidence)[1])
    return evidence


def _with_late_disclosures(stored: Record, shown: Record | None) -> Record:
    """`stored` with the fields `shown` discloses beyond it, each only if it matches one of
    the stored record's committed field hashes (same uid: same commitment)."""
    if shown is None:
        return stored
    committed = set(stored.disclosure.field_hashes)
    extra = {
        name: disclosed
        for name, disclosed in shown.disclosure.fields.items()
        if name not in stored.disclosure.fields and field_hash(name, disclosed.value, disclosed.salt) in committed
    }
    if not extra:
        return stored
    disclosure = Disclosure(stored.disclosure.field_hashes, {**stored.disclosure.fields, **extra})
    return replace(stored, disclosure=disclosure)


def _stored_case_file(
    ledger: StoreReader, roots: set[str], goods: set[str], given: Connection | None = None
) -> tuple[dict[str, Record], dict[str, str]]:
    """The stored records bearing on the history of `roots` (and on goods of `goods`
    classes), and the stored rows that could not be read back (uid -> why).

    At most three reads, each an index range over what it returns: the history (one
    recursive query), what refers to it with the watch-list entries for the goods and
    their revocations, and what refers to those. Each read returns the records' columns
    with their batch's and their references, as plain rows (no ORM objects)."""
    # Core statements on the session's connection: the ORM's per-statement machinery cost
    # more than these reads themselves (cProfile, scripts/bench_store.py --profile).
    with contextlib.ExitStack() as stack:
        conn = given if given is not None else stack.enter_context(ledger.sessions()).connection()
        statements = _STATEMENTS[conn.dialect.name == "postgresql"]
        # Ancestors: everything the roots rest on, transitively.
        rows: dict[str, Any] = {}
        walked: dict[str, int] = {}  # uid -> kind; -1: referenced, but no row holds it
        for row in conn.execute(statements[0], {"roots": list(roots)}):
            if row.uid is None:
                walked[row.walked] = -1
            else:
                rows[row.uid] = row
                walked[row.uid] = row.kind
        ancestors = set(walked) | roots
        # What refers to the history (acceptances, forks, revocations, findings) and what
        # refers to those. Productions and sub-licences under a licence are not read here:
        # only their quantities matter (for a cap), and the node keeps those per licence
        # (`ledger/licence_output.py`). References carry the referring record's kind, so
        # each of these reads is an index range over what it returns, never a scan of
        # everything made under a licence: the cost does not grow with the ledger.
        # The watch-list entries for the goods, and their revocations, come with the first
        # of these reads (the goods classes are the history's): one statement fewer.
        goods = goods | _goods_classes(ledger, rows, ancestors)
        prefixes = tuple(sorted({g[:n] for g in goods for n in range(4, len(g) + 1)}))
        first, watching = _referring(conn, statements[1], walked, prefixes)
        rows.update((u, r) for u, r in first.items() if u not in rows)
        second, _none = _referring(conn, statements[1], {u: r.kind for u, r in first.items() if u not in ancestors})
        rows.update((u, r) for u, r in second.items() if u not in rows)
        for row in watching:
            rows.setdefault(row.uid, row)
    records: dict[str, Record] = {}
    unreadable: dict[str, str] = {}
    for row in rows.values():
        try:
            records[row.uid] = _record_from_row(ledger, row, _refs(row))
        except (ValueError, KeyError, TypeError) as exc:
            unreadable[row.uid] = f"stored row cannot be read back: {type(exc).__name__}: {exc}"
    return records, unreadable


def _runs(kinds: list[int]) -> list[tuple[int, int]]:
    """`kinds` as runs of consecutive values: [1, 4, 5, 6] -> [(1, 1), (4, 6)]."""
    runs: list[tuple[int, int]] = []
    for kind in sorted(kinds):
        if runs and runs[-1][1] == kind - 1:
            runs[-1] = (runs[-1][0], kind)
        else:
            runs.append((kind, kind))
    return runs


# The kinds of reference that bear on a verdict when they point at a licence or a production
# (anything but the productions and sub-licences made under it), as ranges of kind values.
_NOT_UNDER_A_LICENCE = _runs([int(k) for k in Kind if k not in (Kind.PRODUCTION, Kind.LICENCE)])
_LICENSED = (int(Kind.LICENCE), int(Kind.PRODUCTION))


def _statements(postgresql: bool) -> tuple[Select[Any], Select[Any]]:
    """The two evidence reads for one dialect, built once: each returns a record's columns,
    its batch's, and its references (`refs`: "position:uid" pairs joined by commas, so no
    third statement reads them). (1) The history of the `roots` (a recursive walk, with
    the UIDs it met that no row holds). (2) What refers to `others` (any kind) or to
    `licensed` (licences and productions: kinds outside _NOT_UNDER_A_LICENCE only), and,
    marked by a `watch` column of 1 (0 for the rest), the watch-list entries of the
    goods-class `prefixes` and the revocations referring to them.

    In (2) the branches select UIDs only, from the reference index (and the watch-list
    index), and the records and their batches are joined once, over their union: joined
    in every branch, PostgreSQL spent 2.2 ms planning the statement for 0.7 ms running it
    (EXPLAIN ANALYZE at 100,004 records); planned this way, about 0.4 ms."""
    from ledger.store.models import AttestationRefRow, AttestationRow, BatchRow, WatchlistClassRow
    from ledger.store.rows import one_of

    a, r, b = AttestationRow.__table__, AttestationRefRow.__table__, BatchRow.__table__
    w = WatchlistClassRow.__table__
    held = r.alias("held")
    # Each dialect's own aggregate with a literal separator: `aggregate_strings` binds its
    # separator as a parameter rendered into the text at every execution.
    aggregate = func.string_agg if postgresql else func.group_concat
    refs = (
        select(aggregate(cast(held.c.position, String) + ":" + held.c.ref, literal_column("','")))
        .where(held.c.uid == a.c.uid)
        .scalar_subquery()
    )
    columns = [
        *(a.c[name] for name in _RECORD_COLUMNS),
        b.c.chain_index.label("batch_index"),
        b.c.root.label("batch_root"),
        b.c.status.label("batch_status"),
        b.c.tx_hash.label("batch_tx"),
        b.c.block_number.label("batch_block"),
        refs.label("refs"),
    ]
    history = select(a.c.uid.label("uid")).where(one_of(a.c.uid, "roots", postgresql))
    walk = history.cte("history", recursive=True)
    walk = walk.union(select(r.c.ref.label("uid")).join(walk, r.c.uid == walk.c.uid))
    # Joined flat (walk, then each record, then its batch): nested, SQLite materialised the
    # record-with-batch join, a scan of every record.
    of_history = select(walk.c.uid.label("walked"), *columns).select_from(
        walk.outerjoin(a, a.c.uid == walk.c.uid).outerjoin(b, a.c.batch_id == b.c.id)
    )
    found = [select(r.c.uid, literal(0).label("watch")).where(one_of(r.c.ref, "others", postgresql))]
    for low, high in _NOT_UNDER_A_LICENCE:
        # A range of kinds, not a list: PostgreSQL then reads the (ref, kind) index with
        # both columns; given the list, it read every reference to the licence and
        # filtered the kinds afterwards (measured: a cost growing with the productions).
        found.append(
            select(r.c.uid, literal(0).label("watch")).where(
                one_of(r.c.ref, "licensed", postgresql), r.c.kind.between(low, high)
            )
        )
    watching = select(w.c.uid).where(one_of(w.c.goods_class, "prefixes", postgresql))
    found.append(select(w.c.uid, literal(1).label("watch")).where(one_of(w.c.goods_class, "prefixes", postgresql)))
    # The revocations of those entries: an entry its rights holder withdrew flags nothing,
    # and only a revocation in the evidence can say so (the chain holds only direct ones).
    # One kind, so an index range on (ref, kind) per entry.
    found.append(
        select(r.c.uid, literal(1).label("watch")).where(r.c.ref.in_(watching), r.c.kind == int(Kind.REVOCATION))
    )
    uids = union_all(*found).subquery("found")
    referring = select(*columns, uids.c.watch).select_from(
        uids.join(a, a.c.uid == uids.c.uid).outerjoin(b, a.c.batch_id == b.c.id)
    )
    return of_history, referring


_RECORD_COLUMNS = (*RECORD_COLUMNS, "batch_id", "direct_tx")
_STATEMENTS = {postgresql: _statements(postgresql) for postgresql in (False, True)}


def _refs(row: Any) -> list[str]:
    """The row's references in order, from its `refs` column (None: it has none)."""
    if row.refs is None:
        return []
    pairs = sorted((int(position), ref) for position, ref in (pair.split(":", 1) for pair in row.refs.split(",")))
    return [ref for _position, ref in pairs]


def _referring(
    conn: Any, read: Select[Any], targets: dict[str, int], prefixes: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[Any]]:
    """The stored records referring to `targets` (uid -> its stored kind) that bear on a
    verdict: anything referring to a custody record, finding or asset; of what refers to
    a licence or a production, not productions or sub-licences (a production outside the
    history is a sibling under a licence: its revocations still count). In the same
    statement, the watch-list entries for the goods-class `prefixes` and the revocations
    of those entries (the second item)."""
    if not targets and not prefixes:
        return {}, []
    licensed = [u for u, k in targets.items() if k in _LICENSED]
    others = [u for u, k in targets.items() if k not in _LICENSED]
    referring: dict[str, Any] = {}
    watching: list[Any] = []
    for row in conn.execute(read, {"others": others, "licensed": licensed, "prefixes": list(prefixes)}):
        if row.watch:
            watching.append(row)
        else:
            referring[row.uid] = row
    return referring, watching


def _goods_classes(ledger: StoreReader, rows: dict[str, Any], ancestors: set[str]) -> set[str]:
    """The goods classes a watch list could be matched on: the shipment's declared class
    and the classes its productions were made as."""
    found: set[str] = set()
    for uid in ancestors:
        row = rows.get(uid)
        if row is None or row.kind not in (int(Kind.SHIPMENT), int(Kind.PRODUCTION)):
            continue
        try:
            fields = _fields_of(ledger, row)
        except (ValueError, KeyError, TypeError):
            continue  # reported as STORE_CORRUPTED when the record is built
        value = fields.get("goodsClass", {}).get("value")
        if isinstance(value, str):
            found.add(value)
    return found


def _fields_of(ledger: StoreReader, row: Any) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(row.disclosed)
    if row.sealed is not None:
        fields.update(ledger.sealer.open(row.sealed, parse_hex(row.uid, 32, "uid")))
    return fields


@lru_cache(maxsize=64)
def _domain(chain_id: int, contract: str) -> Domain:
    """The domain a stored row names (the same one or two recur in every row)."""
    return Domain(chain_id, contract)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What a stored row's signed and disclosed columns parse to (not its anchor)."""

    attestation: Attestation
    domain: Domain
    signature: bytes
    disclosure: Disclosure
    confidential: frozenset[str]


# uid -> (the row's columns that `_parse_row` reads, its references and the sealer that
# opened it; what they parsed to). Parsing is a pure function of that key, so an entry is
# reused only when the row as read now is exactly the row parsed then: an edited column
# or reference row is parsed (and checked) afresh. Nothing here is a check's outcome:
# the integrity check decides for itself what it checked (`checks/integrity.py`).
_PARSED: dict[str, tuple[tuple[Any, ...], _Parsed]] = {}
_PARSED_MAX = 8192  # bounded: emptied when full (a few MB); the records most reused come back first
_RECORD_VALUES = attrgetter(*RECORD_COLUMNS)  # every column a stored record is parsed from


def _parse_row(ledger: StoreReader, row: Any, refs: list[str]) -> _Parsed:
    """The row's attestation, domain, signature and disclosure, parsed once per process for
    as long as the row reads the same (records shared by many verifications — licences,
    rights holders' assets, watch-list entries — are parsed once, not once per verdict)."""
    key = (
        _RECORD_VALUES(row),
        tuple(refs),
        ledger.sealer,  # compared by identity: another node's key opens (or fails) afresh
    )
    kept = _PARSED.get(row.uid)
    if kept is not None and kept[0] == key:
        return kept[1]
    from ledger.store.rows import attestation_from_row

    attestation = attestation_from_row(row, refs)
    domain = _domain(row.chain_id, row.contract)
    disclosed = json.loads(row.disclosed)
    if not isinstance(disclosed, dict):
        raise ValueError("the stored disclosed fields are not an object")
    fields = dict(disclosed)
    if row.sealed is not None:
        fields.update(ledger.sealer.open(row.sealed, parse_hex(row.uid, 32, "uid")))
    disclosure = Disclosure.from_json({"fieldHashes": json.loads(row.field_hashes), "fields": fields})
    confidential = frozenset(fields) - frozenset(disclosed)
    parsed = _Parsed(attestation, domain, parse_hex(row.signature, 65, "signature"), disclosure, confidential)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[row.uid] = (key, parsed)
    return parsed


def _record_from_row(ledger: StoreReader, row: Any, refs: list[str]) -> Record:
    parsed = _parse_row(ledger, row, refs)
    anchor_json: dict[str, Any] | None = None
    kept: tuple[bytes, int] | None = None
    try:
        batch = (
            BatchFacts(row.batch_id, row.batch_index, row.batch_root, row.batch_status, row.batch_tx, row.batch_block)
            if row.batch_id is not None and row.batch_index is not None
            else None
        )
        # No proof made here: the anchoring check proves the leaf from the kept tree, and
        # an export reads the proof from it (`Record.to_bundle_entry`).
        anchor = ledger.anchor_from(row.uid, row.batch_id, row.direct_tx, batch, proof=False)
    except RuntimeError as exc:  # the batch's stored members no longer rebuild its root
        anchor_json = {"type": "batch", "error": str(exc)}
    else:
        if anchor.status == "direct":
            anchor_json = {"type": "direct", "txHash": anchor.tx_hash}
        elif anchor.batch_index is not None and anchor.tree is not None and anchor.leaf is not None:
            anchor_json = {
                "type": "batch",
                "batchIndex": anchor.batch_index,
                "root": anchor.root,
                "txHash": anchor.tx_hash,
                "blockNumber": anchor.block_number,
            }
            kept = (anchor.tree, anchor.leaf)
    return Record(
        row.uid,
        parsed.attestation,
        parsed.domain,
        parsed.signature,
        parsed.disclosure,
        anchor_json,
        None,
        parsed.confidential,
        kept,
    )
