"""Mirroring the public ledger from peers nobody trusts, checked against the chain.

Certificate Transparency's monitors are the model: where the bytes came from does not
matter, only that they hash to the published root. For every batch anchored on chain
(with enough confirmations) that this node does not hold completely, the mirror asks its
peers in turn for the batch's public records — the signed struct, the signature and the
fields disclosed to the ledger, never confidential plaintext — and stores them only when
every signature and commitment checks out and the UIDs rebuild exactly the on-chain root
and count. A peer that withholds records, adds one, or serves a forged one is reported
by name and batch, and the next peer (or a later run) fills the gap. Batches are
committed a group at a time (`_GroupedWriter`); mirroring resumes wherever the store
stands, so a restart costs at most the group in progress; `follow` keeps up with new
blocks.

A federation is nodes mirroring each other: each anchors its own records into the one
batch sequence of the one ledger contract, and each mirrors the others' batches, so a
shipment declared at one border verifies at another, and findings and watch lists reach
every node.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import Dialect, Engine, Table, bindparam, insert, select, update
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.orm import Session, sessionmaker

from . import public_records
from .anchoring import ANCHORED
from .chain.view import ChainSnapshot
from .completeness import CompletenessMonitor
from .eip712 import Domain
from .kinds import Kind
from .peers import Peer, PeerUnavailable
from .ports import Node
from .public_records import BatchRows, Fault, batch_rows
from .signatures import SignatureChecker
from .store.aggregates import add_to_aggregates
from .store.db import lock_for_append
from .store.models import (
    AttestationRefRow,
    AttestationRow,
    BatchExtraMemberRow,
    BatchRow,
    EpcisEventRow,
    WatchlistClassRow,
)
from .store.rows import held_batches, held_uids

log = logging.getLogger(__name__)

ZERO_ROOT = "0x" + "00" * 32


@dataclass(frozen=True)
class PeerProblem:
    """What a peer did wrong for one batch, or (with `uid`) for one directly recorded
    attestation: UNREACHABLE, WITHHELD (fewer records than the chain anchors), ADDED
    (more), FORGED (a record that fails its signature or commitment, records that do not
    rebuild the root, or not the record the chain holds)."""

    peer: str
    batch: int | None
    what: str
    detail: str
    uid: str | None = None

    def to_json(self) -> dict[str, Any]:
        where = {"batch": self.batch} if self.uid is None else {"direct": self.uid}
        return {"peer": self.peer, **where, "what": self.what, "detail": self.detail}

    @property
    def where(self) -> str:
        return f"batch {self.batch}" if self.uid is None else f"direct record {self.uid}"


@dataclass
class MirrorReport:
    batches_checked: int = 0
    batches_stored: int = 0
    records_stored: int = 0
    gaps: list[int] = field(default_factory=list)  # batches no peer could fill
    direct_stored: int = 0
    direct_missing: list[str] = field(default_factory=list)  # direct records no peer could give
    problems: list[PeerProblem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "batchesChecked": self.batches_checked,
            "batchesStored": self.batches_stored,
            "recordsStored": self.records_stored,
            "gaps": self.gaps,
            "directStored": self.direct_stored,
            "directMissing": self.direct_missing,
            "peerProblems": [p.to_json() for p in self.problems],
        }

    @property
    def complete(self) -> bool:
        return not self.gaps and not self.direct_missing


@dataclass(frozen=True)
class _Wanted:
    """A batch anchored on chain that this node lacks or holds incompletely."""

    index: int
    root: str
    count: int
    block: int


Checked = BatchRows | Fault


def mirror(
    ledger: Node,
    peers: Sequence[Peer],
    *,
    progress: Callable[[int, int, int], None] | None = None,
    jobs: int = 1,
) -> MirrorReport:
    """Fill every confirmed batch this node lacks (or holds incompletely) from `peers`;
    `progress(batches done, batches on chain, records stored)` follows each batch (the
    records of the group in progress are stored, not yet committed).

    With `jobs` > 1 the first peer's batches are fetched and checked ahead in `jobs`
    forked worker processes (at most 2 x `jobs` batches in flight, so memory stays
    bounded whatever the ledger's size); batches are still stored one at a time in chain
    order, and anything a worker finds wrong is fetched and checked again here with this
    node's full signature checker (smart-contract wallets included), so the outcome is
    the same as checking everything in this process."""
    report = MirrorReport()
    snapshot = ledger.chain_view.snapshot(max_age=0)
    total = snapshot.confirmed_batches(ledger.settings.confirmations)
    held = _held_batches(ledger)
    wanted: list[_Wanted] = []
    for index in range(total):
        found = snapshot.batch(index)
        count = snapshot.batch_count(index)
        if found is None or count is None:
            report.gaps.append(index)
        elif held.get(index) != (found[0], count):
            wanted.append(_Wanted(index, found[0], count, found[1]))
    ahead: Iterator[Checked] | None = None
    if jobs > 1 and len(wanted) > 1 and peers:
        ahead = _checked_in_workers(peers[0], ledger.domain, wanted, jobs)
    writer = _GroupedWriter(ledger, ledger.completeness) if wanted else None
    try:
        for want in wanted:
            report.batches_checked += 1
            stored = False
            for position, peer in enumerate(peers):
                checked: Checked | None = next(ahead) if ahead is not None and position == 0 else None
                if checked is None or isinstance(checked, tuple):  # not checked ahead, or found wrong there
                    with _collector_paused():
                        try:
                            document = peer.batch(want.index, want.count)
                        except PeerUnavailable as exc:
                            report.problems.append(PeerProblem(peer.name, want.index, "UNREACHABLE", str(exc)))
                            continue
                        checked = _checked_rows(ledger.domain, ledger.checker, document, want.root, want.count)
                if isinstance(checked, tuple):
                    report.problems.append(PeerProblem(peer.name, want.index, checked[0], checked[1]))
                    log.warning("peer %s, batch %d: %s (%s)", peer.name, want.index, checked[0], checked[1])
                    continue
                before = snapshot.batch(want.index - 1) if want.index > 0 else None
                previous = before[0] if before is not None else ZERO_ROOT
                assert writer is not None
                new = _store_batch(writer, want.index, want.root, previous, want.block, checked)
                report.records_stored += new or 0
                report.batches_stored += 1
                writer.stored(want.index, want.root, len(checked.attestations), vouch=new is not None)
                stored = True
                break
            if not stored:
                report.gaps.append(want.index)
            if progress is not None:
                progress(want.index + 1, total, report.records_stored)
        if writer is not None:
            writer.commit()
    finally:
        if writer is not None:
            writer.close()  # rolls back what was not committed: a run that failed stored whole groups only
        if ahead is not None:
            ahead.close()  # type: ignore[attr-defined]
    report.gaps.sort()
    _mirror_direct(ledger, peers, snapshot, report)
    if progress is not None and total and (not wanted or wanted[-1].index + 1 < total):
        progress(total, total, report.records_stored)
    return report


def _mirror_direct(ledger: Node, peers: Sequence[Peer], snapshot: ChainSnapshot, report: MirrorReport) -> None:
    """Fetch every confirmed directly recorded attestation this node lacks, each checked
    against the chain's record of it (its UID and attester)."""
    on_chain = snapshot.confirmed_direct(ledger.settings.confirmations)
    with ledger.sessions.begin() as session:
        held = held_uids(session, list(on_chain))
        # Held here too, not yet batched or marked: it is anchored already (never seal it again).
        for uid in held_uids(session, sorted(held), unanchored_only=True):
            session.execute(
                update(AttestationRow).where(AttestationRow.uid == uid).values(direct_tx=snapshot.direct_tx(uid))
            )
    for uid, (attester, _block) in sorted(on_chain.items(), key=lambda item: (item[1][1], item[0])):
        if uid in held:
            continue
        for peer in peers:
            try:
                document = peer.direct(uid)
            except PeerUnavailable as exc:
                report.problems.append(PeerProblem(peer.name, None, "UNREACHABLE", str(exc), uid))
                continue
            checked = public_records.check_direct(ledger.domain, ledger.checker, document, uid, attester)
            if isinstance(checked, tuple):
                report.problems.append(PeerProblem(peer.name, None, checked[0], checked[1], uid))
                log.warning("peer %s, direct record %s: %s (%s)", peer.name, uid, checked[0], checked[1])
                continue
            rows = batch_rows([checked], ledger.domain, time.time())
            with ledger.sessions.begin() as session:
                lock_for_append(session)
                _insert(session, rows, None, snapshot.direct_tx(uid))
            report.direct_stored += 1
            report.records_stored += 1
            break
        else:
            report.direct_missing.append(uid)


def _checked_rows(domain: Domain, checker: SignatureChecker, document: object, root: str, count: int) -> Checked:
    """The rows that store a served batch document, when every record in it checks out
    against `root` and `count`; else the server's fault."""
    checked = public_records.check_batch(domain, checker, document, root, count)
    return checked if isinstance(checked, tuple) else batch_rows(checked, domain, time.time())


def _checked_in_workers(first: Peer, domain: Domain, wanted: list[_Wanted], jobs: int) -> Iterator[Checked]:
    """The first peer's batches in `wanted` order, each fetched and checked in one of
    `jobs` forked workers; an unreachable peer reads as ("UNREACHABLE", why), and so does
    a batch whose worker died (killed for memory, say): the caller then fetches and checks
    it itself. (multiprocessing.Pool never delivered a dead worker's result: the mirror
    waited for it for ever.)"""
    context = multiprocessing.get_context("fork")
    # Objects that exist now are never collected by the workers' GC, so the pages they
    # share with this process stay shared (a collection would write to every one).
    gc.freeze()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start, initargs=(first, domain))
    window: deque[Future[Checked]] = deque()

    def submit(want: _Wanted) -> None:
        try:
            window.append(pool.submit(_fetch_and_check, want.index, want.root, want.count))
        except BrokenProcessPool as exc:  # a worker died earlier: every later batch is checked here
            failed: Future[Checked] = Future()
            failed.set_exception(exc)
            window.append(failed)

    try:
        queued = iter(wanted)
        for want in itertools.islice(queued, 2 * jobs):
            submit(want)
        while window:
            try:
                result = window.popleft().result()
            except BrokenProcessPool as exc:
                result = ("UNREACHABLE", f"the worker checking this batch died ({exc})")
            following = next(queued, None)
            if following is not None:
                submit(following)
            yield result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


_WORKER: tuple[Peer, Domain, SignatureChecker] | None = None  # each forked worker's own peer


def _worker_start(first: Peer, domain: Domain) -> None:
    """A worker takes the default SIGTERM and ignores SIGINT (the parent decides), and
    opens its own connection or file handle to the peer (neither is shared across fork)."""
    global _WORKER
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = (first.for_worker(), domain, SignatureChecker())


def _fetch_and_check(index: int, root: str, count: int) -> Checked:
    assert _WORKER is not None, "the pool's initializer sets the worker's peer"
    peer, domain, checker = _WORKER
    with _collector_paused():
        try:
            document = peer.batch(index, count)
        except PeerUnavailable as exc:
            return "UNREACHABLE", str(exc)
        return _checked_rows(domain, checker, document, root, count)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while one batch is parsed and checked.
    That allocates tens of thousands of objects, all alive until the batch is done, and
    the collector traversed them again and again as they were made: parsing and checking
    a 4,096-record batch took 170 us a record of CPU with it, 148 without (measured in a
    process whose earlier objects were frozen, as a forked worker's are). What one batch
    allocates is bounded and freed by reference counting; the collector runs again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def follow(ledger: Node, peers: Sequence[Peer], stop: threading.Event, interval: float = 2.0) -> None:
    """Mirror until `stop` is set, looking for new batches every `interval` seconds."""
    while not stop.is_set():
        try:
            result = mirror(ledger, peers)
            if result.gaps:
                log.warning("mirror: batches %s not yet filled by any peer", result.gaps[:10])
            if result.direct_missing:
                log.warning("mirror: direct records %s not yet given by any peer", result.direct_missing[:10])
        except Exception as exc:  # noqa: BLE001 - chain or database down: try again later
            log.warning("mirror pass failed: %s", exc)
        stop.wait(interval)


class _Sessions(Protocol):
    @property
    def sessions(self) -> sessionmaker[Session]: ...


# A catch-up commits its batches in groups of about this many records (or what it stored
# in this many seconds, whichever comes first): a commit costs a WAL sync and, on SQLite,
# usually a checkpoint, and a group of batches dirties fewer pages than its batches one
# by one (the random keys of the UID, subject and reference indexes share leaf pages).
# The time bound keeps other writers of the store (ingest) from waiting long.
GROUP_RECORDS = 16_384
GROUP_SECONDS = 2.0
# SQLite's page cache for the catch-up's connection (KiB). The default (2 MiB) is far
# smaller than the pages one batch dirties in those indexes, so SQLite spilled dirty
# pages to the WAL in the middle of each transaction and read them back, several times
# over: 6.7 WAL page writes and 6.4 WAL page reads per stored record, measured with
# strace over a 100,000-record catch-up, against 1.4 page writes to the database itself.
SQLITE_CACHE_KIB = 256 * 1024


class _GroupedWriter:
    """One connection for a whole catch-up, whose batches are committed a group at a
    time. `sessions` hands out sessions joined to the group's transaction: committing
    one commits nothing, and rolling one back (an error) rolls back the whole group.
    Every group is one transaction, committed durably: a crash, a kill or an error
    loses at most the group in progress, never part of a batch, and the next run
    resumes from the batches held (the store is consistent at every commit)."""

    def __init__(self, ledger: Node, monitor: CompletenessMonitor) -> None:
        self._monitor = monitor
        self._group: list[tuple[int, str, int]] = []  # (chain index, root, records) stored since the last commit
        with ledger.sessions() as session:
            engine = session.get_bind()
        assert isinstance(engine, Engine), "a node's sessions are bound to its engine"
        self.connection = engine.connect()
        self._sqlite = engine.dialect.name == "sqlite"
        if self._sqlite:
            self.connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self.connection.commit()
        self._transaction = self.connection.begin()
        self.sessions = sessionmaker(
            bind=self.connection, join_transaction_mode="rollback_only", expire_on_commit=False
        )
        self._records, self._since = 0, time.monotonic()

    def stored(self, index: int, root: str, records: int, *, vouch: bool) -> None:
        """Batch `index` (`root`) of `records` checked records was stored (when `vouch`,
        under that index and root): commit the group once it is large or old enough."""
        if vouch:
            self._group.append((index, root, records))
        self._records += records
        if self._records >= GROUP_RECORDS or time.monotonic() - self._since >= GROUP_SECONDS:
            self.commit()

    def commit(self) -> None:
        """Commit the group; the completeness monitor then knows its batches' members
        rebuild their roots (they were checked to, before they were written)."""
        if self._transaction.is_active:
            self._transaction.commit()
            for index, root, records in self._group:
                self._monitor.vouch(index, root, records)
        self._group = []
        self._transaction = self.connection.begin()
        self._records, self._since = 0, time.monotonic()

    def close(self) -> None:
        """Roll back whatever was not committed, and close the connection (closed, not
        pooled: its large page cache is freed with it)."""
        if self._transaction.is_active:
            self._transaction.rollback()
        self.connection.invalidate()
        self.connection.close()


def _held_batches(ledger: Node) -> dict[int, tuple[str, int]]:
    """chain index -> (root, records held under it), for every batch row in the store."""
    with ledger.sessions() as session:
        return {index: (root, members) for index, (_id, root, members) in held_batches(session).items()}


def _store_batch(ledger: _Sessions, index: int, root: str, previous: str, block: int, rows: BatchRows) -> int | None:
    """Store a checked batch under its chain index; returns how many records were new, or
    None when the index is held under another root (nothing stored)."""
    now = time.time()
    uids = rows.uids
    with ledger.sessions.begin() as session:
        lock_for_append(session)  # first, as every transaction that appends attestations
        batch = session.scalars(select(BatchRow).where(BatchRow.chain_index == index)).first()
        if batch is None:
            batch = BatchRow(
                chain_index=index,
                root=root,
                previous_root=previous,
                count=len(uids),
                status=ANCHORED,
                block_number=block,
                attempts=0,
                sealed_at=now,
                anchored_at=now,
            )
            session.add(batch)
            session.flush()
        elif batch.root != root:
            # Our own batch lost the race for this index: the anchoring worker moves it
            # after the chain's tip; the peer's batch is stored on a later pass.
            log.info("batch %d: our own unanchored batch holds the index; storing it later", index)
            return None
        present: dict[str, int | None] = {
            uid: batch_id for uid, batch_id in session.execute(_HELD_BATCH_OF, {"uids": uids})
        }
        unbatched = [u for u, b in present.items() if b is None]
        if unbatched:  # submitted here too, anchored by the peer: never anchor it twice
            session.execute(update(AttestationRow).where(AttestationRow.uid.in_(unbatched)).values(batch_id=batch.id))
        _record_anchored_again(session, batch.id, [u for u, b in present.items() if b not in (None, batch.id)])
        new = rows.without(present) if present else rows
        _insert(session, new, batch.id, None)
    return len(new.attestations)


# The batch each of these UIDs is held under, if held: one expanding parameter, so a
# batch's 4,096 UIDs are not each turned into a bound literal by SQLAlchemy.
_HELD_BATCH_OF = select(AttestationRow.uid, AttestationRow.batch_id).where(
    AttestationRow.uid.in_(bindparam("uids", expanding=True))
)


def _record_anchored_again(session: Session, batch_id: int, uids: list[str]) -> None:
    """Count `uids`, held under other batches, as members of batch `batch_id` too (an
    anchorer anchored them again; without this the batch stays short for ever)."""
    if not uids:
        return
    known = set(
        session.scalars(
            select(BatchExtraMemberRow.uid).where(
                BatchExtraMemberRow.batch_id == batch_id, BatchExtraMemberRow.uid.in_(uids)
            )
        )
    )
    fresh = [{"batch_id": batch_id, "uid": u} for u in uids if u not in known]
    if fresh:
        log.warning("batch id %d anchors %d record(s) another batch anchored already", batch_id, len(fresh))
        session.execute(insert(cast(Table, BatchExtraMemberRow.__table__)), fresh)


def _insert(session: Session, rows: BatchRows, batch_id: int | None, direct_tx: str | None) -> None:
    """One executemany per table, parents first (references point at attestations),
    each attestation row under `batch_id` (or recorded directly in `direct_tx`). The rows
    go to SQLite's driver as the tuples they are, positionally: SQLAlchemy's per-row
    parameter handling cost more than SQLite's own work here. Other databases get them
    keyed by column name, their drivers' parameter style."""
    connection = session.connection()
    attestations = [(*row, batch_id, direct_tx) for row in rows.attestations]
    for model, columns, values in (
        (AttestationRow, (*public_records.ATTESTATION_COLUMNS, "batch_id", "direct_tx"), attestations),
        (AttestationRefRow, public_records.REF_COLUMNS, rows.refs),
        (WatchlistClassRow, public_records.WATCHLIST_CLASS_COLUMNS, rows.watchlist_classes),
        (EpcisEventRow, public_records.EPCIS_EVENT_COLUMNS, rows.epcis_events),
    ):
        if not values:
            continue
        statement, positional = _insert_statement(cast(Table, model.__table__), columns, connection.dialect)
        connection.exec_driver_sql(
            statement, values if positional else [dict(zip(columns, v, strict=True)) for v in values]
        )
    # The exporters' running history (risk signals) reads shipments only, from mappings.
    shipments = [
        dict(zip(public_records.ATTESTATION_COLUMNS, row, strict=True))
        for row in rows.attestations
        if row[1] == _SHIPMENT
    ]
    add_to_aggregates(session, shipments)


_SHIPMENT = int(Kind.SHIPMENT)


@functools.cache
def _insert_statement(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, bool]:
    """The driver's INSERT of `columns` into `table`, and whether its parameters are
    positional in that order (SQLite's qmark style) rather than named."""
    if dialect.name == "sqlite":
        compiled = insert(table).compile(dialect=SQLiteDialect_pysqlite(paramstyle="qmark"), column_keys=list(columns))
        assert compiled.positiontup == list(columns), "sqlite: the INSERT's parameters are not in column order"
        return str(compiled), True
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    assert compiled.positiontup is None, f"{dialect.name}: the driver's parameters are not named"
    return str(compiled), False
