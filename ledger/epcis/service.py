"""EPCIS import and export against a ledger: what the API and the command line call.

Promises:
- `import_signed` stores a signed import all or nothing: every submission is validated
  (signature, fields, signer's standing, references) before any is stored, and if one
  is refused none is stored.
- `export_lot` / `export_shipment` return an EPCIS 2.0 document of the custody history,
  recorded from EPCIS or natively (`exporter.export_document`), each event carrying the
  UIDs and anchoring of the attestations it came from (`prov:attestations`).
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..ingest import Accepted, Rejected
from ..kinds import Kind
from ..store.models import AttestationRefRow, AttestationRow
from ..submission import subject_id
from .exporter import export_document

if TYPE_CHECKING:
    from ..core import Ledger


class ImportRejected(ValueError):
    """A signed import was refused as a whole; `results` holds each item's outcome."""

    def __init__(self, results: list[Accepted | Rejected]) -> None:
        self.results = results
        refused = [r for r in results if isinstance(r, Rejected)]
        super().__init__("; ".join(f"{r.reason.value}: {r}" for r in refused) or "refused")


def import_signed(ledger: Ledger, submissions: list[dict[str, Any]]) -> list[Accepted]:
    """Store the signed attestations of one import, all or nothing."""
    problems: list[Accepted | Rejected] = []
    for submission in submissions:
        try:
            ledger.ingestor.prepare(submission)
            problems.append(Accepted("", created=False))
        except Rejected as exc:
            problems.append(exc)
    if any(isinstance(p, Rejected) for p in problems):
        raise ImportRejected(problems)
    results = ledger.ingest_many(list(submissions))
    if any(isinstance(r, Rejected) for r in results):
        # References are the only check left to the store; items refer to earlier items
        # of the same import or to stored attestations, so this means a stale plan.
        raise ImportRejected(results)
    return [r for r in results if isinstance(r, Accepted)]


def export_lot(ledger: Ledger, lot: str) -> dict[str, Any]:
    """The EPCIS 2.0 document of a lot's recorded events (its canonical GS1 key or lot id)."""
    from ..gs1 import GS1KeyError, canonical

    with contextlib.suppress(GS1KeyError):  # a lot named natively, not by a GS1 key
        lot = canonical(lot)
    subject = "0x" + subject_id(f"lot:{lot}").hex()
    with ledger.sessions() as session:
        uids = list(session.scalars(select(AttestationRow.uid).where(AttestationRow.subject == subject)))
    return export_document(ledger, uids)


def export_shipment(ledger: Ledger, shipment_uid: str) -> dict[str, Any]:
    """The EPCIS 2.0 document of the custody history behind a shipment: its ancestors and
    the acceptances of the hand-overs among them."""
    seen: set[str] = set()
    queue = deque([shipment_uid.lower()])
    with ledger.sessions() as session:
        while queue:
            uid = queue.popleft()
            if uid in seen:
                continue
            seen.add(uid)
            queue.extend(session.scalars(select(AttestationRefRow.ref).where(AttestationRefRow.uid == uid)))
        # The acceptances of those hand-overs are part of the custody story too.
        accepted = session.scalars(
            select(AttestationRefRow.uid)
            .join(AttestationRow, AttestationRow.uid == AttestationRefRow.uid)
            .where(AttestationRefRow.ref.in_(seen), AttestationRow.kind == int(Kind.TRANSFER_ACCEPTANCE))
        )
        seen.update(accepted)
    return export_document(ledger, sorted(seen))
