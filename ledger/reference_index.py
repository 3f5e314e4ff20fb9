"""The reference rows of productions and licences, held against the records they belong to.

A licence's cap is checked against the productions made under it, and the node finds
them through the `attestation_refs` index (ref = the licence). The completeness
watermark proves the store holds every anchored record, not that each record still has
its reference rows: a database administrator who deletes only a sibling production's
reference rows hides it from every fresh process, and a licence over its cap reads
within it. The rows are part of what was signed, though — a record's UID is the hash of
its typed data, references included — so each completeness measurement:

- re-derives, once per process, the UID of every production and licence stored since
  the last measurement from its row and its reference rows, and names any that does not
  derive the UID it is stored (and anchored) under;
- counts the reference rows of productions and licences in the index and compares the
  count with what the checked records hold: a row deleted (or added) after its record
  was checked shows at the next measurement.

What it cannot see within one process: a reference row rewritten in place after its
record was checked (the count is unchanged); the next process re-derives it. Cost: the
derivation is about 20 µs per record, once; the count reads the (ref, kind) index once
per measurement (a node measures in the background, off the request path).
"""

from __future__ import annotations

import threading
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .eip712 import Domain, attestation_uid
from .hashing import hex32
from .kinds import Kind
from .store.models import AttestationRefRow, AttestationRow
from .store.rows import SIGNED_COLUMNS, attestation_from_row, refs_by_uid

KINDS = (int(Kind.PRODUCTION), int(Kind.LICENCE))
MAX_NAMED = 20
_CHUNK = 2000


class ReferenceIndexCheck:
    """Compares the stored reference rows of productions and licences with their records."""

    def __init__(self, domain: Domain) -> None:
        self._domain = domain
        self._lock = threading.Lock()
        self._last_id = 0
        self._references = 0  # reference rows the records checked so far hold
        self._damaged: list[str] = []

    def problems(self, session: Session) -> list[str]:
        """What is wrong now (empty: every production and licence derives its UID with
        the reference rows it has, and the index holds exactly those rows)."""
        with self._lock:
            self._learn(session)
            problems = list(self._damaged)
            indexed = session.scalar(select(func.count()).where(AttestationRefRow.kind.in_(KINDS))) or 0
            if indexed != self._references:
                problems.append(
                    f"the reference index holds {indexed:,} rows of productions and licences; "
                    f"their records hold {self._references:,}"
                )
            return problems[:MAX_NAMED]

    def _learn(self, session: Session) -> None:
        """Derive the UID of every production and licence stored since the last call."""
        while True:
            rows = session.execute(
                select(AttestationRow.id, *SIGNED_COLUMNS)
                .where(AttestationRow.kind.in_(KINDS), AttestationRow.id > self._last_id)
                .order_by(AttestationRow.id)
                .limit(_CHUNK)
            ).all()
            if not rows:
                return
            refs = refs_by_uid(session, [row.uid for row in rows])
            for row in rows:
                held = refs.get(row.uid, [])
                self._references += len(held)
                try:
                    derived = hex32(
                        attestation_uid(attestation_from_row(cast(AttestationRow, row), held), self._domain)
                    )
                except ValueError as exc:
                    derived = f"nothing ({exc})"
                if derived != row.uid and len(self._damaged) < MAX_NAMED:
                    self._damaged.append(
                        f"{Kind(row.kind).type_name} {row.uid} as stored (with {len(held)} reference rows) "
                        f"derives {derived}, not the UID it is stored under"
                    )
            self._last_id = rows[-1].id
