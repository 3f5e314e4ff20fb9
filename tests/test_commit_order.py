"""Two submissions race on PostgreSQL and the one with the lower row id commits last.

A running node follows the store by row id (`LicenceOutputs.catch_up` reads the rows
stored since the highest id it has read; so does the reference index's count). On
PostgreSQL a row's id is taken from a sequence when it is inserted, not when its
transaction commits: if a production with id N commits after one with id N+1 was read,
a reader that has moved past N+1 never reads N, and the licence's count misses that
production for the life of the process. An exporter whose production lands that way
ships over the licence's cap and the node answers VERIFIED.

Here the race is made, not hoped for: a second connection holds an uncommitted row with
the first production's UID, so the first ingest, its id taken, waits on the UID's unique
index while the second ingest runs. Appending transactions are serialised
(`ledger.store.db.lock_for_append`), so the second waits for the first and rows become
visible in id order. (SQLite allows one writer at a time, so the race is PostgreSQL's.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.reasons import Reason
from ledger.store.models import AttestationRow
from ledger.verify import Verdict

from .scenario import Story


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _wait_for_a_lock_wait(conn: Any, ingesting: threading.Thread, errors: list[BaseException]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ingesting.is_alive():
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar()
        conn.rollback()  # the statistics views hold one snapshot per transaction
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError(f"the first ingest never waited on the held UID: {errors}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_production_that_commits_after_a_later_one_still_counts_against_its_licence(ledger_env: Ledger) -> None:
    node = ledger_env
    story = Story(node)
    asset = story.asset()
    licence = story.licence([asset], quantityCap=1500)
    made = story.produce([licence], quantity=1000)
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    story.anchor()
    assert node.verify_shipment(shipment).verdict is Verdict.VERIFIED  # 1,000 of 1,500

    late = story.sign("maker", *_production(licence, "LOT-2", 1000), ingest=False)  # over the cap
    late_submission = story.last
    early = story.sign("maker", *_production(licence, "LOT-3", 1), ingest=False)
    early_submission = story.last

    columns = ", ".join(c.name for c in AttestationRow.__table__.columns if c.name not in ("id", "uid"))
    # The model's own column names, no input: a copy of a stored row under the late UID.
    copy_row = f"INSERT INTO attestations (uid, {columns}) SELECT :late, {columns} FROM attestations WHERE uid = :made"  # noqa: S608
    holder = node.engine.connect()
    try:
        holder.begin()
        copied = holder.execute(
            text(copy_row),
            {"late": late, "made": made},
        )
        assert copied.rowcount == 1
        first, first_errors = _in_thread(lambda: node.ingest(late_submission))
        with node.engine.connect() as watcher:
            _wait_for_a_lock_wait(watcher, first, first_errors)  # its row id is taken; it waits on the UID
        second, second_errors = _in_thread(lambda: node.ingest(early_submission))
        second.join(timeout=3)  # unserialised, it commits now, with the higher id
        node.verify_shipment(shipment)  # the node reads the store meanwhile
        holder.rollback()
    finally:
        holder.close()
    first.join(timeout=60)
    second.join(timeout=60)
    assert not first.is_alive() and not second.is_alive()
    assert not first_errors and not second_errors, (first_errors, second_errors)
    with node.engine.connect() as conn:
        rows = conn.execute(text("SELECT uid, id FROM attestations WHERE uid IN (:a, :b)"), {"a": late, "b": early})
        ids = {uid: id_ for uid, id_ in rows}
    assert ids[late] < ids[early]  # the race as described: the lower id was the late one

    story.anchor()
    result = node.verify_shipment(shipment)
    assert result.verdict is Verdict.FLAGGED, result.to_json()  # 2,001 made under a cap of 1,500
    assert Reason.LICENCE_QUANTITY.value in str(result.to_json())


def _production(licence: str, lot: str, quantity: int) -> tuple[Any, dict[str, Any], str, list[str]]:
    return (
        Kind.PRODUCTION,
        {"lot": lot, "quantity": quantity, "unit": "pcs", "goodsClass": "841370"},
        f"lot:{lot}",
        [licence],
    )
