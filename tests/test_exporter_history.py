"""The exporter history behind the risk score is a running aggregate kept as shipments are
stored (ingest, mirroring, and the migration that creates it for an existing store), not
re-read per verification. It moves the risk score only, never the verdict."""

from __future__ import annotations

import re

from alembic import command
from sqlalchemy import delete, text

from ledger.core import Ledger
from ledger.store.aggregates import HISTORY_WINDOW, add_to_aggregates, exporter_history
from ledger.store.db import alembic_config
from ledger.store.models import ExporterHistoryRow, ExporterRouteRow

from .scenario import Story, actor


def _factors(ledger: Ledger, shipment: str) -> set[str]:
    return {f.name for f in ledger.verify_shipment(shipment).risk_factors}


def test_an_exporters_other_shipments_and_routes_shape_its_risk_factors(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    assert "NEW_EXPORTER" in _factors(ledger_env, ids["shipment"])
    # Further shipments by the same exporter (from the same goods: the custody check
    # flags them, the risk signals are computed all the same).
    to_de = story.ship([ids["carrier_ok"]], 600, destination="DE")
    big = story.ship([ids["carrier_ok"]], 6000)
    story.anchor()
    assert not {"NEW_EXPORTER", "NEW_ROUTE"} & _factors(ledger_env, ids["shipment"])
    factors = _factors(ledger_env, to_de)
    assert "NEW_EXPORTER" not in factors and "NEW_ROUTE" in factors
    assert {"QUANTITY_SPIKE"} <= _factors(ledger_env, big) and "NEW_ROUTE" not in _factors(ledger_env, big)
    with ledger_env.sessions() as session:
        kept = exporter_history(session, actor("exporter").address, "FR")
    assert kept.shipments == 3 and kept.destinations == {"FR": 2}
    assert [q for _uid, q in kept.recent_quantities] == [600, 600, 6000]


def test_an_administrator_deleting_the_aggregates_only_raises_the_risk_score(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.ship([ids["carrier_ok"]], 600)
    story.anchor()
    before = ledger_env.verify_shipment(ids["shipment"])
    with ledger_env.engine.begin() as conn:
        conn.execute(delete(ExporterRouteRow))
        conn.execute(delete(ExporterHistoryRow))
    fresh = Ledger.open(ledger_env.settings, manifest=ledger_env.deployment.manifest)
    try:
        after = fresh.verify_shipment(ids["shipment"])
    finally:
        fresh.close()
    assert after.verdict is before.verdict, (before.verdict, after.verdict)
    assert after.risk_score >= before.risk_score
    assert {f.name for f in after.risk_factors} >= {"NEW_EXPORTER"}


def test_a_confidential_destination_or_quantity_is_not_kept_in_the_aggregates(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    hidden = story.ship([ids["carrier_ok"]], 700, destination="NL", confidential=["destination", "quantity"])
    with ledger_env.engine.connect() as conn:
        stored = " ".join(str(row) for row in conn.execute(text("SELECT * FROM exporter_routes")))
        stored += " ".join(str(row) for row in conn.execute(text("SELECT * FROM exporter_history")))
    assert hidden not in stored
    values = re.sub(r"0x[0-9a-fA-F]+", "", stored)  # a UID or address may hold "700" by chance
    assert "NL" not in values and "700" not in values
    with ledger_env.sessions() as session:
        assert exporter_history(session, actor("exporter").address).shipments == 2


def test_the_window_keeps_the_latest_quantities(ledger_env: Ledger) -> None:
    exporter = "0x" + "ab" * 20
    rows = [
        {
            "uid": f"0x{i:064x}",
            "kind": 6,
            "attester": exporter,
            "disclosed": f'{{"quantity": {{"value": {i + 1}, "salt": "0x00"}}}}',
        }
        for i in range(HISTORY_WINDOW + 5)
    ]
    with ledger_env.sessions.begin() as session:
        add_to_aggregates(session, rows[:3])
        add_to_aggregates(session, rows[3:])
    with ledger_env.sessions() as session:
        kept = exporter_history(session, exporter, "FR")
    assert kept.shipments == HISTORY_WINDOW + 5 and kept.destinations == {}
    assert [q for _uid, q in kept.recent_quantities] == list(range(6, HISTORY_WINDOW + 6))


def test_migration_0009_builds_the_aggregates_ingest_keeps(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.ship([ids["carrier_ok"]], 500, destination="DE")
    query = "SELECT attester, shipments, recent_quantities FROM exporter_history ORDER BY attester"
    routes = "SELECT attester, destination, shipments FROM exporter_routes ORDER BY attester, destination"
    with ledger_env.engine.connect() as conn:
        kept = (conn.execute(text(query)).all(), conn.execute(text(routes)).all())
    assert kept[0] and kept[1]
    cfg = alembic_config(ledger_env.engine.url.render_as_string(hide_password=False))
    with ledger_env.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    with ledger_env.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
    with ledger_env.engine.connect() as conn:
        rebuilt = (conn.execute(text(query)).all(), conn.execute(text(routes)).all())
    assert rebuilt == kept
