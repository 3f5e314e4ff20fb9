"""The customs access log: group commit keeps every entry, and failures reach the caller."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from ledger.access import AccessLog, create_api_key
from ledger.core import Ledger
from ledger.store.models import AccessLogRow


def test_concurrent_entries_are_all_committed_before_record_returns(ledger_env: Ledger) -> None:
    key, _ = create_api_key(ledger_env.sessions, "lane 7", {"customs"})
    log = AccessLog(ledger_env.sessions)
    seen_after_return: list[bool] = []

    def lane(i: int) -> None:
        shipment = f"0x{i:064x}"
        log.record(key, "verify", shipment, "VERIFIED")
        with ledger_env.sessions() as session:  # durable by the time record() returns
            seen_after_return.append(
                session.scalar(select(AccessLogRow.id).where(AccessLogRow.shipment == shipment)) is not None
            )

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert seen_after_return == [True] * 40
    with ledger_env.sessions() as session:
        rows = session.scalars(select(AccessLogRow)).all()
    assert sorted(r.shipment for r in rows) == sorted(f"0x{i:064x}" for i in range(40))
    assert {(r.key_id, r.action, r.verdict) for r in rows} == {(key.id, "verify", "VERIFIED")}


def test_an_entry_that_cannot_be_written_fails_the_caller(ledger_env: Ledger) -> None:
    key, _ = create_api_key(ledger_env.sessions, "lane 8", {"customs"})
    log = AccessLog(ledger_env.sessions)
    with pytest.raises(ValueError, match="access log action must be 1-32 characters"):  # refused before the database
        log.record(key, None, "0x01", "VERIFIED")  # type: ignore[arg-type]  # NOT NULL column
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.record(key, "verify", "0x01", "VERIFIED")
