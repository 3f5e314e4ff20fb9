"""Chain alarms: conditions an operator must see (fee ceiling reached, a reorganisation
deeper than the confirmation policy). Kept in the database, so the worker raises them
and every API process reports them (`/readyz`, `/metrics`), and logged when raised.

`FEE_CEILING` clears itself once fees fall back under the ceiling. `DEEP_REORG` stands
until an operator clears it (`clear_alarm`): a history the node once reported final
changed, and that must never be silently forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from .store.models import ChainAlarmRow

log = logging.getLogger(__name__)

FEE_CEILING = "fee_ceiling"
DEEP_REORG = "deep_reorg"
ALARMS = (FEE_CEILING, DEEP_REORG)


def raise_alarm(sessions: sessionmaker[Session], name: str, detail: str, now: float | None = None) -> None:
    """Raise (or update) alarm `name`; logged as an error when new or changed."""
    with sessions.begin() as session:
        row = session.get(ChainAlarmRow, name)
        if row is not None and row.detail == detail:
            return
        if row is None:
            session.add(ChainAlarmRow(name=name, detail=detail, raised_at=now if now is not None else time.time()))
        else:
            row.detail = detail
    log.error("ALARM %s: %s", name, detail)


def clear_alarm(sessions: sessionmaker[Session], name: str) -> bool:
    """Clear alarm `name`; True when it was raised."""
    with sessions.begin() as session:
        cleared = session.execute(delete(ChainAlarmRow).where(ChainAlarmRow.name == name)).rowcount  # type: ignore[attr-defined]
    if cleared:
        log.warning("alarm %s cleared", name)
    return bool(cleared)


def active_alarms(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Standing alarms: name -> detail."""
    with sessions() as session:
        return {row.name: row.detail for row in session.scalars(select(ChainAlarmRow))}


class AlarmCollector(Collector):
    """Prometheus gauge `provenance_chain_alarm{alarm=...}`: 1 while the alarm stands."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "provenance_chain_alarm",
            "Chain alarms (1 while standing): fee ceiling, deep reorganisation",
            labels=["alarm"],
        )
        try:
            standing = active_alarms(self.sessions)
        except Exception:  # noqa: BLE001 - a scrape must not fail with the database
            standing = {}
        for name in sorted(set(ALARMS) | set(standing)):
            gauge.add_metric([name], 1.0 if name in standing else 0.0)
        yield gauge
