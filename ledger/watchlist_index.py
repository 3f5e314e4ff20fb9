"""The goods-class index of watch-list entries, held against the entries themselves.

Verification finds the watch-list entries that can match a shipment through the
`watchlist_classes` index (an index range per goods class, not a read of every entry).
The completeness watermark proves the store holds every anchored *record*; it says
nothing of rows derived from them. A database administrator who deletes an entry's
index rows (and leaves the entry) would hide it from every verification, turning a
FLAGGED shipment VERIFIED. So each completeness measurement rebuilds the index from the
stored entries — each checked once per process as a peer's record would be (typed-data
hash against its stored UID, signature, disclosure commitments) — and compares it with
the index as stored. Any difference is reported, and the node is not complete while
it lasts.

Cost per measurement: one read of the entries' UIDs (the (kind, id) index) and one of
the index rows; entries are read and checked only the first time this process sees
them. Watch lists are a small part of a ledger (about one record in 60 in the
benchmark's realistic store).
"""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from .eip712 import Domain
from .ingest import watchlist_class_rows
from .kinds import Kind
from .public_records import check_stored, stored_records
from .signatures import SignatureChecker
from .store.models import AttestationRow, WatchlistClassRow

MAX_NAMED = 20


class WatchlistIndexCheck:
    """Compares the stored goods-class index with the stored watch-list entries."""

    def __init__(self, domain: Domain, checker: SignatureChecker) -> None:
        self._domain = domain
        self._checker = checker
        self._lock = threading.Lock()
        self._classes: dict[str, frozenset[str]] = {}  # entry UID -> the classes its checked record covers

    def problems(self, session: Session) -> list[str]:
        """What is wrong with the index now (empty: it is exactly what the entries say);
        an entry whose stored row no longer checks out is named too."""
        with self._lock:
            entries = set(session.scalars(select(AttestationRow.uid).where(AttestationRow.kind == int(Kind.WATCHLIST))))
            problems = self._learn(session, sorted(entries - set(self._classes)))
            for gone in set(self._classes) - entries:
                del self._classes[gone]  # its deletion is the watermark's to report
            indexed: dict[str, set[str]] = {}
            for uid, goods_class in session.execute(select(WatchlistClassRow.uid, WatchlistClassRow.goods_class)):
                indexed.setdefault(uid, set()).add(goods_class)
            for uid in sorted(entries | set(indexed)):
                expected = self._classes.get(uid)
                if expected is None:
                    continue  # unreadable (named above)
                held = indexed.get(uid, set())
                if held != expected:
                    missing, extra = sorted(expected - held), sorted(held - expected)
                    problems.append(
                        f"watch-list entry {uid}: the goods-class index "
                        + (f"lacks {', '.join(missing)}" if missing else "")
                        + ("; " if missing and extra else "")
                        + (f"adds {', '.join(extra)}" if extra else "")
                    )
            for uid in sorted(set(indexed) - entries):
                problems.append(f"the goods-class index names {uid}, which is no watch-list entry held here")
            return problems[:MAX_NAMED]

    def _learn(self, session: Session, uids: list[str]) -> list[str]:
        """Check the entries `uids` from their stored rows and remember their classes."""
        problems: list[str] = []
        for start in range(0, len(uids), 500):
            part = uids[start : start + 500]
            for uid, record in stored_records(session, AttestationRow.uid.in_(part)):
                checked = check_stored(self._domain, self._checker, uid, record)
                if isinstance(checked, tuple):
                    problems.append(f"watch-list entry {uid} as stored does not check out: {checked[1]}")
                    continue
                self._classes[uid] = frozenset(row["goods_class"] for row in watchlist_class_rows(checked, uid))
        return problems
