"""The customs access log: what it records is checked before it is queued, and one entry
that cannot be stored never fails the other officers' entries of the same group commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from ledger.access import AccessLog, ApiKey
from ledger.store.db import make_engine, migrate, session_factory
from ledger.store.models import AccessLogRow

OFFICER = ApiKey("a1b2c3d4e5f6", "Le Havre lane 3", frozenset({"customs"}))


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine, session_factory(engine)
    engine.dispose()


def logged(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        return [(r.shipment, r.verdict) for r in session.scalars(select(AccessLogRow).order_by(AccessLogRow.id))]


def test_a_shipment_id_of_any_length_is_logged_without_failing(store: tuple[Engine, sessionmaker[Session]]) -> None:
    """An exporter presents a bundle naming a 100,000-character "shipment" (PostgreSQL
    would refuse it in VARCHAR(66)): the entry is logged under a hash of it."""
    _, sessions = store
    log = AccessLog(sessions)
    try:
        log.record(OFFICER, "verify-bundle", "0x" + "ab" * 50_000, "UNVERIFIABLE")
        log.record(OFFICER, "verify-bundle", "evil\x00\nshipment", "UNVERIFIABLE")
        log.record(OFFICER, "verify", "0x" + "cd" * 32, "VERIFIED")
        with pytest.raises(ValueError, match="verdict"):
            log.record(OFFICER, "verify", "0x" + "cd" * 32, "X" * 17)
    finally:
        log.close()
    rows = logged(sessions)
    assert len(rows) == 3
    assert rows[0][0].startswith("h:") and len(rows[0][0]) == 66
    assert rows[1][0].startswith("h:") and rows[2] == ("0x" + "cd" * 32, "VERIFIED")


# A row the database itself refuses, and a lock that keeps writers waiting, per dialect.
POISON_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER poison BEFORE INSERT ON access_log WHEN NEW.shipment = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.shipment = 'poison' THEN RAISE EXCEPTION 'refused by the database'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER poison BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION poison()",
    ],
}
WRITE_LOCK = {
    "sqlite": "BEGIN IMMEDIATE",  # the database's one write lock
    "postgresql": "LOCK TABLE access_log IN EXCLUSIVE MODE",  # inserts wait; reads do not
}


def test_one_entry_the_database_refuses_fails_only_its_own_request(store: tuple[Engine, sessionmaker[Session]]) -> None:
    """Six officers verify at once while the database is busy, so their entries share
    one group commit; the database refuses one of them (a trigger stands in for any
    per-row failure). That officer gets the error; the five others are acknowledged and
    every acknowledged entry is in the log."""
    engine, sessions = store
    with engine.begin() as conn:
        for statement in POISON_TRIGGER[engine.dialect.name]:
            conn.execute(text(statement))
    log = AccessLog(sessions)
    batches: list[int] = []
    insert = log._insert

    def spy(rows: list[dict[str, object]]) -> None:
        batches.append(len(rows))
        insert(rows)

    log._insert = spy  # type: ignore[method-assign]
    outcomes: dict[str, str] = {}

    def officer(shipment: str) -> None:
        try:
            log.record(OFFICER, "verify", shipment, "VERIFIED")
            outcomes[shipment] = "acknowledged"
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[shipment] = f"error: {exc}"

    blocker = engine.raw_connection()  # holds the write lock: entries pile up meanwhile
    blocker.cursor().execute(WRITE_LOCK[engine.dialect.name])
    shipments = ["0x" + f"{i:064x}" for i in range(5)] + ["poison"]
    threads = [threading.Thread(target=officer, args=(s,)) for s in ["0x" + "ee" * 32, *shipments]]
    threads[0].start()
    time.sleep(0.3)  # the writer takes the first entry and waits for the lock
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.5)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(timeout=30)
    log.close()
    assert max(batches) >= 6, batches  # the six shared one group commit
    assert outcomes.pop("poison").startswith("error:")
    assert set(outcomes.values()) == {"acknowledged"}, outcomes
    stored = {shipment for shipment, _ in logged(sessions)}
    assert set(outcomes) <= stored and "poison" not in stored
