"""Conversions between store rows and core values (one place for each)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, TypeDecorator, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from ledger.eip712 import Attestation
from ledger.hashing import parse_hex
from ledger.kinds import Kind

from .models import AttestationRefRow, AttestationRow, BatchExtraMemberRow, BatchRow

# The columns of the message an attestation's signer signed (with its references, the
# typed data its UID is the hash of): what `attestation_from_row` reads.
SIGNED_COLUMNS = (
    AttestationRow.uid,
    AttestationRow.kind,
    AttestationRow.attester,
    AttestationRow.subject,
    AttestationRow.payload_hash,
    AttestationRow.issued_at,
    AttestationRow.expires_at,
)

# The names of the columns that hold a record as it was signed and disclosed (its UID,
# signed message, signature, domain, commitments and disclosed or sealed fields), in the
# order the served rows and the evidence read list them.
RECORD_COLUMNS = (
    "uid",
    "kind",
    "attester",
    "subject",
    "payload_hash",
    "issued_at",
    "expires_at",
    "signature",
    "chain_id",
    "contract",
    "field_hashes",
    "disclosed",
    "sealed",
)


class _JsonList(TypeDecorator[list[Any]]):
    """A list bound as one JSON text (SQLite reads it back with `json_each`)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Any) -> str:
        return json.dumps(value or [])


def one_of(column: ColumnElement[Any], name: str, postgresql: bool) -> ColumnElement[bool]:
    """`column` is one of the list bound as `name`: the one place where a statement's SQL
    differs between the dialects, and why. Either way the list is ONE parameter, so the
    statement's text is the same whatever the lists' lengths. On PostgreSQL it is an array
    (`= ANY`): psycopg prepares a text once it has run it five times on a connection, and
    the server then parses it once (it still plans each execution, with its values). On
    SQLite it is a JSON array read by `json_each`: with an expanding IN (one parameter per
    element) every combination of lengths was a new text for SQLite to parse and plan,
    more than its driver's statement cache holds."""
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    values = func.json_each(bindparam(name, type_=_JsonList())).table_valued("value")
    return column.in_(select(values.c.value))


def attestation_from_row(row: AttestationRow, refs: list[str]) -> Attestation:
    """The signed message of a stored attestation, from its row and its ordered references."""
    return Attestation(
        kind=Kind(row.kind),
        attester=row.attester,
        subject=parse_hex(row.subject, 32, "subject"),
        refs=tuple(parse_hex(r, 32, "ref") for r in refs),
        payload_hash=parse_hex(row.payload_hash, 32, "payloadHash"),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
    )


def refs_by_uid(session: Session | Connection, uids: list[str] | set[str]) -> dict[str, list[str]]:
    """The ordered references of each of `uids`, in one query (absent: no references)."""
    if not uids:
        return {}
    pairs: dict[str, list[tuple[int, str]]] = {}
    for uid, ref, position in session.execute(_REFS_OF, {"uids": list(uids)}):
        pairs.setdefault(uid, []).append((position, ref))
    return {uid: [r for _p, r in sorted(found)] for uid, found in pairs.items()}


# Built once: a statement made per call costs more to build and look up than to run.
_REFS_OF = select(AttestationRefRow.uid, AttestationRefRow.ref, AttestationRefRow.position).where(
    AttestationRefRow.uid.in_(bindparam("uids", expanding=True))
)


def held_batches(session: Session) -> dict[int, tuple[int, str, int]]:
    """chain index -> (batch row id, root, records stored under it), for every stored batch."""
    members = batch_members(session)
    return {
        b.chain_index: (b.id, b.root, members.get(b.id, 0))
        for b in session.execute(select(BatchRow.chain_index, BatchRow.id, BatchRow.root))
    }


def batch_members(session: Session, batch_ids: list[int] | None = None) -> dict[int, int]:
    """batch row id -> records stored under it (of `batch_ids`, or of every batch), counted
    over the (batch_id, id) index alone, grouped, never joined row by row; records a batch
    anchors again (`batch_extra_members`) count under it too."""
    members: dict[int, int] = {}
    for column in (AttestationRow.batch_id, BatchExtraMemberRow.batch_id):
        counting = select(column, func.count()).group_by(column)
        counting = counting.where(column.isnot(None) if batch_ids is None else column.in_(batch_ids))
        for batch, n in session.execute(counting):
            if batch is not None:
                members[batch] = members.get(batch, 0) + int(n)
    return members


def in_batch(session: Session, batch_id: int) -> ColumnElement[bool]:
    """The condition selecting every attestation row batch `batch_id` anchors: those whose
    row points at it and, when there are any, those it anchors again (the plain condition
    otherwise, which reads the (batch_id, id) index alone)."""
    again = session.scalars(select(BatchExtraMemberRow.uid).where(BatchExtraMemberRow.batch_id == batch_id)).all()
    pointing = AttestationRow.batch_id == batch_id
    return pointing | AttestationRow.uid.in_(again) if again else pointing


def batch_member_uids(session: Session, batch_id: int) -> list[str]:
    """The UIDs of every record batch `batch_id` anchors (see `in_batch`), in row order."""
    where = in_batch(session, batch_id)
    return list(session.scalars(select(AttestationRow.uid).where(where).order_by(AttestationRow.id)))


def held_uids(session: Session, uids: list[str], chunk: int = 1000, *, unanchored_only: bool = False) -> set[str]:
    """Which of `uids` the store holds (looked up through the uid index, in chunks); with
    `unanchored_only`, only those held neither in a batch nor as directly recorded."""
    held: set[str] = set()
    for start in range(0, len(uids), chunk):
        which: ColumnElement[bool] = AttestationRow.uid.in_(uids[start : start + chunk])
        if unanchored_only:
            which = which & AttestationRow.batch_id.is_(None) & AttestationRow.direct_tx.is_(None)
        held.update(session.scalars(select(AttestationRow.uid).where(which)))
    return held
