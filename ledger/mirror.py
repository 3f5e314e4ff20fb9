"""Mirroring the public ledger from peers nobody trusts, checked against the chain.

Certificate Transparency's monitors are the model: where the bytes came from does not
matter, only that they hash to the published root. For every batch anchored on chain
(with enough confirmations) that this node does not hold completely, the mirror asks its
peers in turn for the batch's public records — the signed struct, the signature and the
fields disclosed to the ledger, never confidential plaintext — and stores them only when
every signature and commitment checks out and the UIDs rebuild exactly the on-chain root
and count. A peer that withholds records, adds one, or serves a forged one is reported
by name and batch, and the next peer (or a later run) fills the gap. Mirroring resumes
wherever the store stands, so a restart costs nothing; `follow` keeps up with new blocks.

A federation is nodes mirroring each other: each anchors its own records into the one
batch sequence of the one ledger contract, and each mirrors the others' batches, so a
shipment declared at one border verifies at another, and findings and watch lists reach
every node.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy import insert, select, update

from .eip712 import Domain, attestation_uid
from .hashing import hex32, parse_hex
from .ingest import Prepared, epcis_event_rows, watchlist_class_rows
from .merkle import MerkleTree
from .payload import Disclosure
from .ports import Node
from .signatures import SignatureChecker
from .store.aggregates import add_to_aggregates
from .store.models import AttestationRefRow, AttestationRow, BatchRow, EpcisEventRow, WatchlistClassRow
from .store.rows import held_batches
from .verify.evidence import EvidenceError, record_from_json

log = logging.getLogger(__name__)

ANCHORED = "anchored"
ZERO_ROOT = "0x" + "00" * 32


class PeerUnavailable(Exception):
    """A peer could not be asked (unreachable, or it answered an error)."""


class Peer(Protocol):
    """Somewhere public records of a batch can be fetched from (trusted for nothing)."""

    name: str

    def batch(self, index: int) -> list[dict[str, Any]]:
        """The public records of batch `index`, as `public_batch` returns them."""
        ...


@dataclass
class HttpPeer:
    """Another node's API: `GET {base_url}/v1/ledger/batches/{index}`."""

    base_url: str
    timeout: float = 30.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.base_url
        self._client = httpx.Client(timeout=self.timeout)

    def batch(self, index: int) -> list[dict[str, Any]]:
        try:
            response = self._client.get(f"{self.base_url.rstrip('/')}/v1/ledger/batches/{index}")
        except httpx.HTTPError as exc:
            raise PeerUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise PeerUnavailable(f"{self.name}: batch {index} answered {response.status_code}")
        body = response.json()
        records = body.get("attestations") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise PeerUnavailable(f"{self.name}: batch {index}: no attestation list in the answer")
        return records


@dataclass(frozen=True)
class PeerProblem:
    """What a peer did wrong for one batch: UNREACHABLE, WITHHELD (fewer records than the
    chain anchors), ADDED (more), FORGED (a record that fails its signature or commitment,
    or records that do not rebuild the root)."""

    peer: str
    batch: int
    what: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"peer": self.peer, "batch": self.batch, "what": self.what, "detail": self.detail}


@dataclass
class MirrorReport:
    batches_checked: int = 0
    batches_stored: int = 0
    records_stored: int = 0
    gaps: list[int] = field(default_factory=list)  # batches no peer could fill
    problems: list[PeerProblem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "batchesChecked": self.batches_checked,
            "batchesStored": self.batches_stored,
            "recordsStored": self.records_stored,
            "gaps": self.gaps,
            "peerProblems": [p.to_json() for p in self.problems],
        }


def public_batch(ledger: Node, index: int) -> list[dict[str, Any]] | None:
    """The public records of the batch anchored at chain index `index` (a peer serves
    these): typed data, signature, field hashes and the fields disclosed to the ledger.
    Confidential fields stay sealed in the store and are never included. None when this
    node does not hold that batch."""
    from .eip712 import typed_data
    from .store.rows import attestation_from_row, refs_by_uid

    with ledger.sessions() as session:
        batch = session.scalars(select(BatchRow).where(BatchRow.chain_index == index)).first()
        if batch is None:
            return None
        rows = session.scalars(select(AttestationRow).where(AttestationRow.batch_id == batch.id)).all()
        refs = refs_by_uid(session, [r.uid for r in rows])
    import json

    out = []
    for row in rows:
        attestation = attestation_from_row(row, refs.get(row.uid, []))
        out.append(
            {
                "uid": row.uid,
                "typedData": typed_data(attestation, ledger.domain),
                "signature": row.signature,
                "payload": {"fieldHashes": json.loads(row.field_hashes), "fields": json.loads(row.disclosed)},
            }
        )
    return out


@dataclass(frozen=True)
class _Wanted:
    """A batch anchored on chain that this node lacks or holds incompletely."""

    index: int
    root: str
    count: int
    block: int


Checked = list[Prepared] | tuple[str, str]


def mirror(
    ledger: Node,
    peers: Sequence[Peer],
    *,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> MirrorReport:
    """Fill every confirmed batch this node lacks (or holds incompletely) from `peers`.

    With `jobs` > 1 and an HTTP first peer, that peer's batches are fetched and checked
    ahead in `jobs` forked worker processes (at most 2 x `jobs` batches in flight, so
    memory stays bounded whatever the ledger's size); batches are still stored one at a
    time in chain order, and anything a worker finds wrong is fetched and checked again
    here with this node's full signature checker (smart-contract wallets included), so
    the outcome is the same as checking everything in this process."""
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
    if jobs > 1 and len(wanted) > 1 and peers and isinstance(peers[0], HttpPeer):
        ahead = _checked_in_workers(peers[0], ledger.domain, wanted, jobs)
    try:
        for want in wanted:
            report.batches_checked += 1
            stored = False
            for position, peer in enumerate(peers):
                checked: Checked | None = next(ahead) if ahead is not None and position == 0 else None
                if checked is None or isinstance(checked, tuple):  # not checked ahead, or found wrong there
                    try:
                        entries = peer.batch(want.index)
                    except PeerUnavailable as exc:
                        report.problems.append(PeerProblem(peer.name, want.index, "UNREACHABLE", str(exc)))
                        continue
                    checked = check_batch(ledger.domain, ledger.checker, entries, want.root, want.count)
                if isinstance(checked, tuple):
                    report.problems.append(PeerProblem(peer.name, want.index, checked[0], checked[1]))
                    log.warning("peer %s, batch %d: %s (%s)", peer.name, want.index, checked[0], checked[1])
                    continue
                before = snapshot.batch(want.index - 1) if want.index > 0 else None
                previous = before[0] if before is not None else ZERO_ROOT
                report.records_stored += _store_batch(ledger, want.index, want.root, previous, want.block, checked)
                report.batches_stored += 1
                stored = True
                break
            if not stored:
                report.gaps.append(want.index)
            if progress is not None:
                progress(want.index + 1, total)
    finally:
        if ahead is not None:
            ahead.close()  # type: ignore[attr-defined]
    report.gaps.sort()
    if progress is not None and total and (not wanted or wanted[-1].index + 1 < total):
        progress(total, total)
    return report


def _checked_in_workers(first: HttpPeer, domain: Domain, wanted: list[_Wanted], jobs: int) -> Iterator[Checked]:
    """The first peer's batches in `wanted` order, each fetched and checked in one of
    `jobs` forked workers; an unreachable peer reads as ("UNREACHABLE", why)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs, initializer=_worker_start, initargs=(first.base_url, first.timeout, domain)) as pool:
        queued = iter(wanted)
        window: deque[Any] = deque()
        for want in itertools.islice(queued, 2 * jobs):
            window.append(pool.apply_async(_fetch_and_check, (want.index, want.root, want.count)))
        while window:
            result: Checked = window.popleft().get()
            following = next(queued, None)
            if following is not None:
                window.append(pool.apply_async(_fetch_and_check, (following.index, following.root, following.count)))
            yield result


_WORKER: tuple[HttpPeer, Domain, SignatureChecker] | None = None  # each forked worker's own peer client


def _worker_start(base_url: str, timeout: float, domain: Domain) -> None:
    """A worker takes the default SIGTERM and ignores SIGINT (the parent decides), and
    opens its own connection to the peer (an HTTP client is not shared across fork)."""
    global _WORKER
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = (HttpPeer(base_url, timeout), domain, SignatureChecker())


def _fetch_and_check(index: int, root: str, count: int) -> Checked:
    assert _WORKER is not None, "the pool's initializer sets the worker's peer"
    peer, domain, checker = _WORKER
    try:
        entries = peer.batch(index)
    except PeerUnavailable as exc:
        return "UNREACHABLE", str(exc)
    return check_batch(domain, checker, entries, root, count)


def follow(ledger: Node, peers: Sequence[Peer], stop: threading.Event, interval: float = 2.0) -> None:
    """Mirror until `stop` is set, looking for new batches every `interval` seconds."""
    while not stop.is_set():
        try:
            result = mirror(ledger, peers)
            if result.gaps:
                log.warning("mirror: batches %s not yet filled by any peer", result.gaps[:10])
        except Exception as exc:  # noqa: BLE001 - chain or database down: try again later
            log.warning("mirror pass failed: %s", exc)
        stop.wait(interval)


def _held_batches(ledger: Node) -> dict[int, tuple[str, int]]:
    """chain index -> (root, records held under it), for every batch row in the store."""
    with ledger.sessions() as session:
        return {index: (root, members) for index, (_id, root, members) in held_batches(session).items()}


def check_batch(
    domain: Domain, checker: SignatureChecker, entries: list[dict[str, Any]], root: str, count: int
) -> Checked:
    """The batch's records, each checked, when they rebuild `root` and `count` exactly;
    else (what, detail) naming the peer's fault."""
    prepared: list[Prepared] = []
    for entry in entries:
        try:
            record = record_from_json(entry)
        except EvidenceError as exc:
            return "FORGED", str(exc)
        if record.domain != domain:
            return "FORGED", f"{record.uid}: signed for another ledger"
        uid = attestation_uid(record.attestation, record.domain)
        if hex32(uid) != record.uid:
            return "FORGED", f"{record.uid}: its typed data hashes to {hex32(uid)}"
        try:
            signature_ok = checker.check_digest(uid, record.attester, record.signature).valid
        except Exception:  # noqa: BLE001 - a wallet that cannot answer: the record cannot be accepted
            signature_ok = False
        if not signature_ok:
            return "FORGED", f"{record.uid}: the signature does not belong to {record.attester}"
        problems = record.disclosure.problems(record.attestation.payload_hash)
        if problems:
            return "FORGED", f"{record.uid}: {'; '.join(problems)}"
        disclosure = Disclosure(record.disclosure.field_hashes, record.disclosure.fields)
        prepared.append(Prepared(record.attestation, uid, record.signature, disclosure, frozenset()))
    uids = {hex32(p.uid) for p in prepared}
    if len(uids) < count:
        return "WITHHELD", f"{len(uids)} distinct records served, the chain anchors {count}"
    if len(uids) > count:
        return "ADDED", f"{len(uids)} distinct records served, the chain anchors {count}"
    rebuilt = hex32(MerkleTree.of([parse_hex(u, 32, "uid") for u in sorted(uids)]).root)
    if rebuilt != root:
        return "FORGED", f"the records rebuild root {rebuilt}, the chain holds {root}"
    unique = {hex32(p.uid): p for p in prepared}
    return list(unique.values())


def _store_batch(ledger: Node, index: int, root: str, previous: str, block: int, records: list[Prepared]) -> int:
    """Store a checked batch under its chain index; returns how many records were new."""
    now = time.time()
    uids = [hex32(p.uid) for p in records]
    with ledger.sessions.begin() as session:
        batch = session.scalars(select(BatchRow).where(BatchRow.chain_index == index)).first()
        if batch is None:
            batch = BatchRow(
                chain_index=index,
                root=root,
                previous_root=previous,
                count=len(records),
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
            return 0
        present: dict[str, int | None] = {
            row.uid: row.batch_id
            for row in session.execute(
                select(AttestationRow.uid, AttestationRow.batch_id).where(AttestationRow.uid.in_(uids))
            )
        }
        unbatched = [u for u, b in present.items() if b is None]
        if unbatched:  # submitted here too, anchored by the peer: never anchor it twice
            session.execute(update(AttestationRow).where(AttestationRow.uid.in_(unbatched)).values(batch_id=batch.id))
        new = [p for p in records if hex32(p.uid) not in present]
        if new:
            rows = [ledger.ingestor.row_for(p, hex32(p.uid), now) | {"batch_id": batch.id} for p in new]
            session.execute(insert(AttestationRow), rows)
            add_to_aggregates(session, rows)
            refs = [
                {"uid": hex32(p.uid), "position": pos, "ref": hex32(ref), "kind": int(p.attestation.kind)}
                for p in new
                for pos, ref in enumerate(p.attestation.refs)
            ]
            if refs:
                session.execute(insert(AttestationRefRow), refs)
            watch = [row for p in new for row in watchlist_class_rows(p, hex32(p.uid))]
            if watch:
                session.execute(insert(WatchlistClassRow), watch)
            epcis = [row for p in new for row in epcis_event_rows(p, hex32(p.uid))]
            if epcis:
                session.execute(insert(EpcisEventRow), epcis)
    return len(new)
