"""Credentials and the customs access log.

API keys look like `pl_<id>_<secret>`; the store keeps the id, the scopes and a SHA-256
of the secret. Scopes: `customs` (verify shipments, record findings), `auditor` (read
attestations, export bundles, history), `admin` (everything, manage participants).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from .store.models import AccessLogRow, ApiKeyRow

SCOPES = frozenset({"customs", "auditor", "admin"})


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(sessions: sessionmaker[Session], name: str, scopes: set[str]) -> tuple[ApiKey, str]:
    """Create a key; returns it and the token to hand over (shown once, never stored)."""
    unknown = scopes - SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {sorted(SCOPES)}; got {sorted(scopes)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with sessions.begin() as session:
        session.add(
            ApiKeyRow(
                id=key_id,
                name=name,
                secret_hash=_digest(secret),
                scopes=",".join(sorted(scopes)),
                created_at=time.time(),
            )
        )
    return ApiKey(key_id, name, frozenset(scopes)), f"pl_{key_id}_{secret}"


# Built once: every request authenticates, and building a statement costs more than this
# primary-key read (a helper measured about 85 µs to build, 26 µs to run on a connection,
# 120-140 µs through the ORM's Session.get).
_KEYS = ApiKeyRow.__table__.c
_KEY_BY_ID = select(_KEYS.id, _KEYS.name, _KEYS.secret_hash, _KEYS.scopes, _KEYS.revoked_at).where(
    _KEYS.id == bindparam("id")
)
_LOG_ENTRIES = insert(AccessLogRow)


def _engine(sessions: sessionmaker[Session]) -> Engine:
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine), "sessions are bound to an engine"
    return engine


def authenticate(sessions: sessionmaker[Session], token: str) -> ApiKey | None:
    """The live key for `token`, or None (unknown, malformed, wrong secret, or revoked).
    Read from the store on every call: a revoked key fails on the next request."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "pl":
        return None
    with _engine(sessions).connect() as conn:
        row = conn.execute(_KEY_BY_ID, {"id": parts[1]}).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _digest(parts[2])):
        return None
    return ApiKey(row.id, row.name, frozenset(row.scopes.split(",")))


def revoke_api_key(sessions: sessionmaker[Session], key_id: str) -> bool:
    with sessions.begin() as session:
        result = session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_api_keys(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as session:
        rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()
    return [{"id": r.id, "name": r.name, "scopes": r.scopes, "revoked": r.revoked_at is not None} for r in rows]


class AccessLog:
    """The customs access log, written with group commit.

    `record` returns only once its entry is committed (durably logged before the answer
    goes out), but concurrent callers share one transaction: a writer thread takes every
    entry waiting, inserts them together and commits once, then releases all of them.
    Under load that turns N commits (each a write lock and an fsync) into one."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._pending: list[tuple[dict[str, object], _Waiter]] = []
        self._lock = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closed = False

    def record(self, key: ApiKey, action: str, shipment: str, verdict: str) -> None:
        """Log who asked what and the verdict; returns once the entry is committed, raises
        (ValueError for an entry that cannot be stored, else the database's error) if not.

        A shipment id longer than its column (a presented bundle may name anything) is
        logged as `h:` + its SHA-256, so the entry still fits and still identifies it."""
        waiter = _Waiter()
        row = _entry(key, action, shipment, verdict)
        with self._lock:
            if self._closed:
                raise RuntimeError("the access log is closed")
            self._pending.append((row, waiter))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="access-log", daemon=True)
                self._writer.start()
            self._lock.notify()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    def close(self) -> None:
        """Write what is pending and stop the writer."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            writer = self._writer
        if writer is not None:
            writer.join(timeout=30)

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            try:
                self._insert([row for row, _ in batch])
                errors: list[BaseException | None] = [None] * len(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the callers below
                # One entry must not fail the others of its group: each one alone, so
                # only the entries that really cannot be committed report an error.
                errors = [exc] if len(batch) == 1 else [self._insert_alone(row) for row, _ in batch]
            for (_, waiter), error in zip(batch, errors, strict=True):
                waiter.error = error
                waiter.done.set()

    def _insert(self, rows: list[dict[str, object]]) -> None:
        with _engine(self._sessions).begin() as conn:
            conn.execute(_LOG_ENTRIES, rows)

    def _insert_alone(self, row: dict[str, object]) -> BaseException | None:
        try:
            self._insert([row])
        except BaseException as exc:  # noqa: BLE001 - handed to its caller
            return exc
        return None


_COLUMNS = {"key_id": 16, "action": 32, "shipment": 66, "verdict": 16}


def _entry(key: ApiKey, action: str, shipment: str, verdict: str) -> dict[str, object]:
    """An access-log row checked against its columns before it is queued."""
    shipment = str(shipment)
    if len(shipment) > _COLUMNS["shipment"] or not shipment.isprintable():
        shipment = "h:" + hashlib.sha256(shipment.encode("utf-8", "surrogatepass")).hexdigest()
    row: dict[str, object] = {
        "key_id": key.id,
        "at": time.time(),
        "action": action,
        "shipment": shipment,
        "verdict": verdict,
    }
    for column, width in _COLUMNS.items():
        value = row[column]
        if not isinstance(value, str) or not value or len(value) > width:
            raise ValueError(f"access log {column} must be 1-{width} characters, got {value!r:.80}")
    return row


class _Waiter:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
