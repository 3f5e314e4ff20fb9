"""Running aggregates kept as attestations are stored, so that verification reads one row
instead of re-reading history that grows with the ledger.

`add_to_aggregates(session, rows)` must be called, in the inserting transaction, by every
path that inserts attestation rows (ingest, mirroring from peers), with the row dicts it
inserts. Today it keeps the exporter history the risk score uses.

Trust: these tables are written by this node and editable by its database administrator,
like every row. They feed only the risk score's history signals (NEW_EXPORTER, NEW_ROUTE,
QUANTITY_SPIKE), never a check and so never a verdict: an edited aggregate can move the
score, not turn a verdict VERIFIED. A missing aggregate row reads as no history, which
only raises the score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ledger.kinds import Kind

from .models import ExporterHistoryRow, ExporterRouteRow

HISTORY_WINDOW = 50  # recent shipment quantities kept per exporter (the "typical" quantity)
_SHIPMENT = int(Kind.SHIPMENT)


@dataclass
class _Added:
    shipments: int = 0
    quantities: list[list[Any]] | None = None
    routes: dict[str, int] | None = None


def add_to_aggregates(session: Session | Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add the attestation rows being inserted (dicts with at least `uid`, `kind`,
    `attester` and `disclosed`, as `Ingestor.row_for` makes them) to the running
    aggregates, in the transaction of `session` (or a connection). Only public (disclosed) fields are counted:
    the aggregates never hold a confidential value. Safe with concurrent writers: counts
    are added in the database, and each exporter's row is locked (PostgreSQL) while its
    window is rewritten, exporters in sorted order."""
    added: dict[str, _Added] = {}
    for row in rows:
        if row["kind"] != _SHIPMENT:
            continue
        entry = added.setdefault(str(row["attester"]).lower(), _Added(0, [], {}))
        entry.shipments += 1
        try:
            fields = json.loads(row["disclosed"])
        except (TypeError, ValueError):
            continue
        assert entry.quantities is not None and entry.routes is not None
        quantity = _value(fields, "quantity")
        if isinstance(quantity, int | float) and not isinstance(quantity, bool):
            entry.quantities.append([str(row["uid"]), quantity])
        destination = _value(fields, "destination")
        if isinstance(destination, str) and 0 < len(destination) <= 8:
            entry.routes[destination] = entry.routes.get(destination, 0) + 1
    if not added:
        return
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    for attester in sorted(added):
        entry = added[attester]
        assert entry.quantities is not None and entry.routes is not None
        history = insert(ExporterHistoryRow).values(attester=attester, shipments=0, recent_quantities="[]")
        session.execute(history.on_conflict_do_nothing(index_elements=["attester"]))
        # The count is added in the database; the UPDATE also locks the row (PostgreSQL)
        # until commit, so the window below is rewritten by one writer at a time.
        session.execute(
            update(ExporterHistoryRow)
            .where(ExporterHistoryRow.attester == attester)
            .values(shipments=ExporterHistoryRow.shipments + entry.shipments)
        )
        if entry.quantities:
            kept = session.scalar(
                select(ExporterHistoryRow.recent_quantities).where(ExporterHistoryRow.attester == attester)
            )
            window = (_window(kept) + entry.quantities)[-HISTORY_WINDOW:]
            session.execute(
                update(ExporterHistoryRow)
                .where(ExporterHistoryRow.attester == attester)
                .values(recent_quantities=json.dumps(window))
            )
        for destination, n in sorted(entry.routes.items()):
            route = insert(ExporterRouteRow).values(attester=attester, destination=destination, shipments=n)
            session.execute(
                route.on_conflict_do_update(
                    index_elements=["attester", "destination"],
                    set_={"shipments": ExporterRouteRow.shipments + n},
                )
            )


@dataclass(frozen=True)
class ExporterHistory:
    """What the aggregates say of an exporter's shipments, as stored now."""

    shipments: int
    destinations: Mapping[str, int]  # only the destination asked for, when asked for one
    recent_quantities: tuple[tuple[str, Any], ...]  # (uid, public quantity), oldest first


def exporter_history(session: Session | Connection, attester: str, destination: object = None) -> ExporterHistory:
    """The exporter's aggregate row and its count of shipments to `destination`: one
    statement of primary-key reads, whatever its history."""
    attester = attester.lower()
    route = destination if isinstance(destination, str) else None
    row = session.execute(_HISTORY_ROW, {"attester": attester, "destination": route}).first()
    if row is None:
        return ExporterHistory(0, {}, ())
    routes: dict[str, int] = {}
    if route is not None and row.to_destination:
        routes[route] = int(row.to_destination)
    window = tuple((str(uid), value) for uid, value in _window(row.recent_quantities))
    return ExporterHistory(int(row.shipments), routes, window)


# One statement, not one per table: each costs more to issue than the reads themselves.
_ROUTE_COUNT = (
    select(ExporterRouteRow.shipments)
    .where(
        ExporterRouteRow.attester == ExporterHistoryRow.attester,
        ExporterRouteRow.destination == bindparam("destination"),
    )
    .scalar_subquery()
)
_HISTORY_ROW = select(
    ExporterHistoryRow.shipments, ExporterHistoryRow.recent_quantities, _ROUTE_COUNT.label("to_destination")
).where(ExporterHistoryRow.attester == bindparam("attester"))


def _value(fields: Mapping[str, Any], name: str) -> Any:
    item = fields.get(name)
    return item.get("value") if isinstance(item, dict) else None


def _window(stored: str | None) -> list[list[Any]]:
    """The stored window, or empty when it cannot be read (only lowers what is known)."""
    try:
        window = json.loads(stored or "[]")
    except ValueError:
        return []
    if not isinstance(window, list):
        return []
    return [w for w in window if isinstance(w, list) and len(w) == 2]
