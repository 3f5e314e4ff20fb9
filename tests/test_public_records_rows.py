"""A mirrored record is stored exactly as ingest stored it at the node that served it:
the same attestation row, references, watch-list classes and EPCIS event keys
(`public_records.batch_rows` builds them in one pass, apart from ingest's functions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger.core import Ledger
from ledger.public_records import (
    ATTESTATION_COLUMNS,
    EPCIS_EVENT_COLUMNS,
    REF_COLUMNS,
    WATCHLIST_CLASS_COLUMNS,
    batch_rows,
    check_stored,
    stored_records,
)
from ledger.signatures import SignatureChecker
from ledger.store.models import AttestationRefRow, AttestationRow, EpcisEventRow, WatchlistClassRow

from .scenario import every_kind
from .test_epcis import gs1_example, run_import


def _table(ledger: Ledger, model: Any, columns: tuple[str, ...]) -> set[tuple[Any, ...]]:
    with ledger.sessions() as session:
        return {tuple(row) for row in session.execute(select(*(getattr(model, c) for c in columns)))}


def test_the_rows_of_mirrored_records_are_the_rows_ingest_stored(ledger_env: Ledger) -> None:
    for submission in every_kind(ledger_env):  # a watch-list entry among them
        ledger_env.ingest(submission)
    assert run_import(ledger_env, "maker", gs1_example("Example_9.6.1-ObjectEvent.jsonld"))  # EPCIS event keys
    checker = SignatureChecker()
    with ledger_env.sessions() as session:
        prepared = []
        for uid, record in stored_records(session, AttestationRow.uid.isnot(None)):
            checked = check_stored(ledger_env.domain, checker, uid, record)
            assert not isinstance(checked, tuple), checked
            prepared.append(checked)
    rows = batch_rows(prepared, ledger_env.domain, 0.0)

    compared = tuple(c for c in ATTESTATION_COLUMNS if c not in ("sealed", "received_at"))
    stored = _table(ledger_env, AttestationRow, compared)
    mirrored = {tuple(r[ATTESTATION_COLUMNS.index(c)] for c in compared) for r in rows.attestations}
    assert mirrored == stored and len(rows.attestations) == len(stored) >= 9
    assert set(rows.refs) == _table(ledger_env, AttestationRefRow, REF_COLUMNS) != set()
    assert set(rows.watchlist_classes) == _table(ledger_env, WatchlistClassRow, WATCHLIST_CLASS_COLUMNS) != set()
    assert set(rows.epcis_events) == _table(ledger_env, EpcisEventRow, EPCIS_EVENT_COLUMNS) != set()
