"""Leases in the database: one holder at a time for a named job (the anchoring worker of
a node is elected this way), expiring unless renewed, so a dead holder is replaced."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .models import WorkerLeaseRow


def acquire_lease(sessions: sessionmaker[Session], name: str, holder: str, seconds: float, now: float) -> bool:
    """Take or renew the lease `name` for `holder`; True when held. Atomic on SQLite and
    PostgreSQL: one conditional UPDATE, or one INSERT that only one process can win."""
    with sessions.begin() as session:
        taken = session.execute(
            update(WorkerLeaseRow)
            .where(WorkerLeaseRow.name == name)
            .where((WorkerLeaseRow.holder == holder) | (WorkerLeaseRow.expires_at < now))
            .values(holder=holder, expires_at=now + seconds)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return True
        if session.get(WorkerLeaseRow, name) is not None:
            return False
    try:
        with sessions.begin() as session:
            session.add(WorkerLeaseRow(name=name, holder=holder, expires_at=now + seconds))
        return True
    except IntegrityError:
        return False


def release_lease(sessions: sessionmaker[Session], name: str, holder: str) -> None:
    """Give the lease up at once (a clean shutdown), if `holder` holds it."""
    with sessions.begin() as session:
        session.execute(
            update(WorkerLeaseRow)
            .where(WorkerLeaseRow.name == name, WorkerLeaseRow.holder == holder)
            .values(expires_at=0.0)
        )
