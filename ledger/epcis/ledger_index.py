"""The planner's view of a local ledger store (`CustodyIndex` over `Ledger.sessions`).

Reads only disclosed fields; an attestation whose quantity or lot was not disclosed to
the ledger cannot be built on by an import (the planner refuses rather than guess).
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..fields import exact_quantity
from ..kinds import Kind
from ..store.models import AttestationRefRow, AttestationRow, EpcisEventRow
from ..submission import subject_id
from .importer import CustodyRecord
from .keys import key_hash


class StoreIndex:
    """`CustodyIndex` over a ledger store."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def lot_records(self, lot: str) -> list[CustodyRecord]:
        subject = "0x" + subject_id(f"lot:{lot}").hex()
        with self.sessions() as session:
            rows = list(session.scalars(select(AttestationRow).where(AttestationRow.subject == subject)))
            uids = [r.uid for r in rows]
            if uids:
                child_uids = set(session.scalars(select(AttestationRefRow.uid).where(AttestationRefRow.ref.in_(uids))))
                child_uids -= set(uids)
                if child_uids:
                    rows += list(session.scalars(select(AttestationRow).where(AttestationRow.uid.in_(child_uids))))
            all_uids = [r.uid for r in rows]
            refs: dict[str, list[str]] = {u: [] for u in all_uids}
            if all_uids:
                for ref_row in session.scalars(
                    select(AttestationRefRow)
                    .where(AttestationRefRow.uid.in_(all_uids))
                    .order_by(AttestationRefRow.uid, AttestationRefRow.position)
                ):
                    refs[ref_row.uid].append(ref_row.ref)
        rows.sort(key=lambda r: (r.issued_at, r.id))
        return [_record(r, refs[r.uid]) for r in rows]

    def recorded(self, event_key: str, attester: str) -> list[str]:
        # One index range (ix_epcis_events_key_attester), written with each attestation.
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(EpcisEventRow.uid)
                    .where(EpcisEventRow.key_hash == key_hash(event_key), EpcisEventRow.attester == attester.lower())
                    .order_by(EpcisEventRow.uid)
                )
            )

    def kinds(self, uids: list[str]) -> set[Kind]:
        with self.sessions() as session:
            return {Kind(k) for k in session.scalars(select(AttestationRow.kind).where(AttestationRow.uid.in_(uids)))}


def _value(fields: dict[str, Any], name: str) -> Any:
    item = fields.get(name)
    return item.get("value") if isinstance(item, dict) else None


def _record(row: AttestationRow, refs: list[str]) -> CustodyRecord:
    fields = json.loads(row.disclosed)
    quantity = exact_quantity(_value(fields, "quantity")) or Fraction(0)
    to = _value(fields, "to")
    lot = _value(fields, "lot")
    return CustodyRecord(
        row.uid,
        Kind(row.kind),
        row.attester.lower(),
        lot if isinstance(lot, str) else None,
        quantity,
        tuple(refs),
        to.lower() if isinstance(to, str) else None,
    )
