"""Auditor replay: rebuild the ledger's history from the chain and re-verify every record,
trusting neither the operator's database nor its API.

The chain is the reference: registry events rebuild who held which role when; ledger
events rebuild the batch sequence. The attestation data (the store, or an exported
archive) is then streamed batch by batch — only one batch in memory at a time — and
every record is re-checked: its UID, its signature, its payload commitment, its
attester's standing at signing time, and that its batch's root is the one on chain.

Discrepancy kinds (stable, like reason codes):
- PAYLOAD_ALTERED: a record's fields no longer match what was signed
- ANCHORED_UID_WITHOUT_DATA: a batch on chain holds more UIDs than the data has
- BATCH_ROOT_MISMATCH: the data of a batch does not rebuild the root on chain (or the
  store's batch row disagrees with the chain)
- UNANCHORED_TOO_LONG: an acknowledged record left unanchored beyond the limit
- KEY_NOT_VALID_AT_SIGNING: the signer did not hold the needed role when it signed
- NOT_SEEN_ON_CHAIN: a record in a batch the chain has never anchored, or in none
- REGISTRY_MIRROR_ALTERED: the store's copy of the registry differs from the chain
- SEQUENCE_BROKEN: the chain's batch sequence has a gap or a broken hash link
"""

from __future__ import annotations

import gzip
import html
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from web3 import Web3

from .chain.client import Deployment
from .chain.logs import AdaptiveLogFetcher
from .chain.manifest import Manifest
from .eip712 import Attestation, Domain, attestation_uid
from .hashing import hex32, parse_hex
from .kinds import Kind
from .merkle import MerkleTree
from .payload import Disclosure
from .ports import Node
from .registry_view import Checkpoint, RegistryView
from .signatures import SignatureChecker

ARCHIVE_FORMAT = "provenance-ledger/archive@1"


@dataclass
class Discrepancy:
    kind: str
    message: str
    uids: list[str] = field(default_factory=list)
    batch: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "uids": self.uids,
            "batch": self.batch,
            "evidence": self.evidence,
        }


@dataclass
class ChainBatch:
    index: int
    root: str
    previous_root: str
    count: int
    block: int
    time: int


@dataclass
class ReplayState:
    """What a replay has established from the chain, saved as a checkpoint to resume from:
    the next block to read, the registry history, the batch sequence, direct records,
    on-chain revocations, and the batches whose data was already checked."""

    next_block: int
    history: dict[str, list[Checkpoint]] = field(default_factory=dict)
    batches: dict[int, ChainBatch] = field(default_factory=dict)
    direct: set[str] = field(default_factory=set)
    revocations: dict[str, set[str]] = field(default_factory=dict)
    checked_batches: set[int] = field(default_factory=set)

    def save(self, path: Path) -> None:
        data = {
            "nextBlock": self.next_block,
            "history": {a: [asdict(c) for c in cs] for a, cs in self.history.items()},
            "batches": [asdict(b) for b in self.batches.values()],
            "direct": sorted(self.direct),
            "revocations": {u: sorted(r) for u, r in self.revocations.items()},
            "checkedBatches": sorted(self.checked_batches),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ReplayState:
        data = json.loads(path.read_text())
        return cls(
            next_block=data["nextBlock"],
            history={a: [Checkpoint(**c) for c in cs] for a, cs in data["history"].items()},
            batches={b["index"]: ChainBatch(**b) for b in data["batches"]},
            direct=set(data["direct"]),
            revocations={u: set(r) for u, r in data["revocations"].items()},
            checked_batches=set(data["checkedBatches"]),
        )


@dataclass
class ReplayReport:
    deployment: dict[str, Any]
    from_block: int
    to_block: int
    batches: list[dict[str, Any]] = field(default_factory=list)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    attestations: int = 0
    skipped: int = 0
    revoked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = defaultdict(int)
        for d in self.discrepancies:
            counts[d.kind] += 1
        return {
            "deployment": self.deployment,
            "blocks": [self.from_block, self.to_block],
            "summary": {
                "attestations": self.attestations,
                "skippedAlreadyChecked": self.skipped,
                "revoked": len(self.revoked),
                "batches": len(self.batches),
                "discrepancies": len(self.discrepancies),
                "byKind": dict(counts),
                "seconds": round(self.seconds, 2),
                "ratePerSecond": round(self.attestations / self.seconds, 1) if self.seconds else None,
            },
            "batches": self.batches,
            "revoked": self.revoked[:1000],
            "discrepancies": [d.to_json() for d in self.discrepancies],
        }


# ------------------------------------------------------------------ data sources


@dataclass
class DataRecord:
    """One attestation as the data source holds it."""

    uid: str
    kind: int
    attester: str
    subject: str
    refs: list[str]
    payload_hash: str
    issued_at: int
    expires_at: int
    signature: str
    field_hashes: list[str]
    fields: dict[str, Any]
    batch_index: int | None
    received_at: float
    direct: bool = False


def store_source(ledger: Node) -> Iterator[DataRecord]:
    """Stream the store's attestations (public fields only), batch by batch."""
    from .store.models import AttestationRefRow, AttestationRow, BatchRow

    with ledger.sessions() as session:
        batch_index = dict(session.execute(select(BatchRow.id, BatchRow.chain_index)).tuples().all())
        last_id = 0
        a = AttestationRow
        columns: list[Any] = [a.id, a.uid, a.kind, a.attester, a.subject, a.payload_hash, a.issued_at, a.expires_at]
        columns += [a.signature, a.field_hashes, a.disclosed, a.batch_id, a.received_at, a.direct_tx]
        while True:
            # Plain rows, not ORM objects: a replay reads every record once, read-only.
            rows = session.execute(select(*columns).where(a.id > last_id).order_by(a.id).limit(2000)).all()
            if not rows:
                return
            uids = [r.uid for r in rows]
            refs: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for r in session.execute(
                select(AttestationRefRow.uid, AttestationRefRow.position, AttestationRefRow.ref).where(
                    AttestationRefRow.uid.in_(uids)
                )
            ):
                refs[r.uid].append((r.position, r.ref))
            for row in rows:
                yield DataRecord(
                    uid=row.uid,
                    kind=row.kind,
                    attester=row.attester,
                    subject=row.subject,
                    refs=[ref for _p, ref in sorted(refs[row.uid])] if row.uid in refs else [],
                    payload_hash=row.payload_hash,
                    issued_at=row.issued_at,
                    expires_at=row.expires_at,
                    signature=row.signature,
                    field_hashes=json.loads(row.field_hashes),
                    fields=json.loads(row.disclosed),
                    batch_index=batch_index.get(row.batch_id) if row.batch_id is not None else None,
                    received_at=row.received_at,
                    direct=row.direct_tx is not None,
                )
            last_id = rows[-1].id


def export_archive(ledger: Node, path: Path, progress: Callable[[int], None] | None = None) -> int:
    """Write the ledger's data as a gzipped JSON-lines archive an auditor can replay
    without the database: attestations, signatures, commitments and public fields —
    never the plaintext of confidential fields. Returns the number of records."""
    count = 0
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(json.dumps({"format": ARCHIVE_FORMAT, "deployment": ledger.deployment.manifest.__dict__}) + "\n")
        for record in store_source(ledger):
            out.write(json.dumps(record.__dict__, sort_keys=True) + "\n")
            count += 1
            if progress and count % 1000 == 0:
                progress(count)
    return count


def archive_source(path: Path) -> Iterator[DataRecord]:
    with gzip.open(path, "rt", encoding="utf-8") as source:
        header = json.loads(source.readline())
        if header.get("format") != ARCHIVE_FORMAT:
            raise ValueError(f"{path} is not a provenance-ledger archive")
        for line in source:
            yield DataRecord(**json.loads(line))


# ------------------------------------------------------------------------ replay


class Progress:
    """A progress line on stderr with rate and ETA (silent when not a terminal, unless forced)."""

    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr, force: bool = False) -> None:
        self.total, self.label, self.stream = max(total, 1), label, stream
        self.enabled = force or stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate else 0
        width = 30
        filled = int(width * min(done, self.total) / self.total)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{rate:,.0f}/s ETA {eta:,.0f}s "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def replay(
    deployment: Deployment,
    data: Iterator[DataRecord],
    *,
    state: ReplayState | None = None,
    expected_total: int = 0,
    unanchored_limit: float = 3600.0,
    store_registry: RegistryView | None = None,
    store_batches: dict[int, str] | None = None,
    progress: Progress | None = None,
    now: float | None = None,
    jobs: int = 1,
) -> tuple[ReplayReport, ReplayState]:
    """Replay `deployment`'s chain history against `data` and report every discrepancy.

    With `state` (a checkpoint of an earlier replay), only new blocks are read and the
    data of batches already checked is skipped. With `jobs` > 1 the per-record checks
    (UID, signature, payload, standing) run in that many forked worker processes, in
    chunks, and their findings are reported in the data's order. Returns the report and
    the new state.
    """
    started = time.monotonic()
    now = time.time() if now is None else now
    manifest = deployment.manifest
    head = int(deployment.w3.eth.block_number)
    state = state or ReplayState(next_block=manifest.deployment_block)
    report = ReplayReport(
        {"chainId": manifest.chain_id, "ledger": manifest.ledger, "registry": manifest.registry},
        state.next_block,
        head,
    )
    _recheck_cached_batches(deployment, state, report)
    _read_chain(deployment, state, head)
    _check_sequence(state, report)
    registry = _ReplayedRegistry(state.history)
    if store_registry is not None:
        _compare_registry(state.history, store_registry, report)
    ctx = _CheckContext(Domain(manifest.chain_id, manifest.ledger), registry, state.direct, unanchored_limit, now)
    seen_per_batch: dict[int, list[bytes]] = defaultdict(list)
    oldest: dict[int, float] = {}
    done = 0

    def chunks() -> Iterator[list[DataRecord]]:
        """The records still to check, in chunks; batch bookkeeping happens here."""
        nonlocal done
        chunk: list[DataRecord] = []
        for record in data:
            if record.batch_index is not None and record.batch_index in state.checked_batches:
                report.skipped += 1
                continue
            done += 1
            revokers = state.revocations.get(record.uid)
            if revokers and record.attester.lower() in {r.lower() for r in revokers}:
                report.revoked.append(record.uid)  # revoked by its own attester, on chain
            if record.batch_index is not None:
                seen_per_batch[record.batch_index].append(parse_hex(record.uid, 32, "uid"))
                oldest[record.batch_index] = min(oldest.get(record.batch_index, now), record.received_at)
            chunk.append(record)
            if len(chunk) == CHECK_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    checked = 0
    for found in _check_all(chunks(), ctx, jobs):
        report.discrepancies.extend(found[1])
        checked += found[0]
        if progress:
            progress.update(checked)
    report.attestations = done
    if progress:
        progress.close()
    # Batch by batch: the data must rebuild each root the chain holds.
    for batch in state.batches.values():
        if batch.index in state.checked_batches:
            continue
        uids = seen_per_batch.pop(batch.index, [])
        status = _check_batch(batch, uids, store_batches, report)
        report.batches.append(
            {
                "index": batch.index,
                "root": batch.root,
                "count": batch.count,
                "block": batch.block,
                "time": batch.time,
                "present": len(uids),
                "status": status,
            }
        )
        if status == "ok":
            state.checked_batches.add(batch.index)
    for index, uids in seen_per_batch.items():
        if now - oldest[index] <= unanchored_limit:
            continue  # sealed recently; its anchoring may still be under way
        report.discrepancies.append(
            Discrepancy(
                "NOT_SEEN_ON_CHAIN",
                f"{len(uids)} record(s) claim batch {index}, which the chain never anchored",
                [hex32(u) for u in uids[:20]],
                batch=index,
            )
        )
    report.seconds = time.monotonic() - started
    return report, state


CHECK_CHUNK = 500


def _check_all(
    chunks: Iterator[list[DataRecord]], ctx: _CheckContext, jobs: int
) -> Iterator[tuple[int, list[Discrepancy]]]:
    """(records checked, discrepancies) per chunk, in order: here, or in `jobs` forked workers."""
    global _WORKER_CONTEXT
    import multiprocessing

    _WORKER_CONTEXT = ctx
    try:
        if jobs <= 1:
            yield from map(_check_chunk, chunks)
            return
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_worker_signals) as pool:
            yield from pool.imap(_check_chunk, chunks)
            pool.close()  # let the workers finish and exit on their own
            pool.join()
    finally:
        _WORKER_CONTEXT = None


def _check_batch(
    batch: ChainBatch, uids: list[bytes], store_batches: dict[int, str] | None, report: ReplayReport
) -> str:
    rebuilt = hex32(MerkleTree.of(uids).root) if uids and len(set(uids)) == len(uids) else None
    status = "ok"
    if len(uids) < batch.count:
        status = "missing data"
        report.discrepancies.append(
            Discrepancy(
                "ANCHORED_UID_WITHOUT_DATA",
                f"batch {batch.index} anchors {batch.count} UIDs but the data holds {len(uids)}",
                batch=batch.index,
                evidence={"anchored": batch.count, "present": len(uids)},
            )
        )
    elif rebuilt != batch.root:
        status = "root mismatch"
        report.discrepancies.append(
            Discrepancy(
                "BATCH_ROOT_MISMATCH",
                f"the data of batch {batch.index} rebuilds {rebuilt}, the chain holds {batch.root}",
                batch=batch.index,
                evidence={"rebuilt": rebuilt, "onChain": batch.root},
            )
        )
    if store_batches is not None and store_batches.get(batch.index) not in (None, batch.root):
        status = "store row altered"
        report.discrepancies.append(
            Discrepancy(
                "BATCH_ROOT_MISMATCH",
                f"the store's batch row {batch.index} says root {store_batches[batch.index]}, "
                f"the chain holds {batch.root}",
                batch=batch.index,
                evidence={"store": store_batches[batch.index], "onChain": batch.root},
            )
        )
    return status


def _read_chain(deployment: Deployment, state: ReplayState, head: int) -> None:
    """Extend `state` with the registry and ledger events of blocks [state.next_block, head]."""
    manifest = deployment.manifest
    registry_events = {
        bytes.fromhex(str(e().topic)[2:]): e for e in (deployment.registry.events.EffectiveRolesChanged,)
    }
    ledger_events = {
        bytes.fromhex(str(e().topic)[2:]): e
        for e in (
            deployment.ledger.events.BatchAnchored,
            deployment.ledger.events.Attested,
            deployment.ledger.events.Revoked,
        )
    }
    history: dict[str, list[Checkpoint]] = defaultdict(list, state.history)
    revocations: dict[str, set[str]] = defaultdict(set, state.revocations)
    block_times: dict[int, int] = {}
    if head < state.next_block:
        return
    fetcher = AdaptiveLogFetcher(deployment.w3, [manifest.registry, manifest.ledger])
    for _low, _high, logs in fetcher.fetch(state.next_block, head):
        for log in logs:
            topic = bytes(log["topics"][0])
            address = str(log["address"]).lower()
            if address == manifest.registry.lower() and topic in registry_events:
                args = registry_events[topic]().process_log(log)["args"]
                history[str(args["account"]).lower()].append(Checkpoint.from_event(args))
            elif address == manifest.ledger.lower() and topic in ledger_events:
                decoded = ledger_events[topic]().process_log(log)
                args = decoded["args"]
                if decoded["event"] == "Attested":
                    state.direct.add(hex32(bytes(args["uid"])))
                    if int(args["kind"]) == int(Kind.REVOCATION):
                        for ref in args["refs"]:
                            revocations[hex32(bytes(ref))].add(str(args["attester"]))
                    continue
                if decoded["event"] == "Revoked":
                    revocations[hex32(bytes(args["uid"]))].add(str(args["attester"]))
                    continue
                number = int(log["blockNumber"])
                if number not in block_times:
                    block_times[number] = int(deployment.w3.eth.get_block(number)["timestamp"])
                state.batches[int(args["index"])] = ChainBatch(
                    int(args["index"]),
                    hex32(bytes(args["root"])),
                    hex32(bytes(args["previousRoot"])),
                    int(args["count"]),
                    number,
                    block_times[number],
                )
    state.history = dict(history)
    state.revocations = dict(revocations)
    state.batches = dict(sorted(state.batches.items()))
    state.next_block = head + 1


def _recheck_cached_batches(deployment: Deployment, state: ReplayState, report: ReplayReport) -> None:
    """Batches an earlier replay read (a checkpoint) must still hold their roots on chain.
    One that vanished or changed means a reorganisation rewrote history the auditor had
    accepted: reported as REORGANISED (never silently trusted), forgotten, and its blocks
    read again."""
    ledger = deployment.ledger
    reread_from: int | None = None
    for index, batch in list(state.batches.items()):
        root = hex32(bytes(ledger.functions.batchRoot(index).call()))
        if root == batch.root:
            continue
        now_holds = "nothing" if int(root, 16) == 0 else root
        report.discrepancies.append(
            Discrepancy(
                "REORGANISED",
                f"batch {index} was read anchored with root {batch.root} in block {batch.block}; "
                f"the chain now holds {now_holds} at that index (a reorganisation rewrote history)",
                batch=index,
                evidence={"replayed": batch.root, "block": batch.block, "onChain": root},
            )
        )
        del state.batches[index]
        state.checked_batches.discard(index)
        reread_from = batch.block if reread_from is None else min(reread_from, batch.block)
    if reread_from is not None:
        state.next_block = min(state.next_block, reread_from)


def _check_sequence(state: ReplayState, report: ReplayReport) -> None:
    previous = "0x" + "00" * 32
    for expected, index in enumerate(sorted(state.batches)):
        batch = state.batches[index]
        if index != expected or batch.previous_root != previous:
            report.discrepancies.append(
                Discrepancy(
                    "SEQUENCE_BROKEN",
                    f"batch {index} does not follow batch {expected - 1} (gap or broken link)",
                    batch=index,
                )
            )
        previous = batch.root


class _ReplayedRegistry(RegistryView):
    """The registry view over histories rebuilt from chain events (no database)."""

    def __init__(self, histories: dict[str, list[Checkpoint]]) -> None:
        self._histories = histories

    def history(self, account: str) -> list[Checkpoint]:
        return self._histories.get(account.lower(), [])


def _compare_registry(history: dict[str, list[Checkpoint]], store: RegistryView, report: ReplayReport) -> None:
    from .store.models import RoleCheckpointRow

    with store._sessions() as session:
        accounts = set(session.scalars(select(RoleCheckpointRow.account)))
    for account in sorted(accounts | set(history)):
        ours, theirs = history.get(account, []), store.history(account)
        if ours != theirs:
            report.discrepancies.append(
                Discrepancy(
                    "REGISTRY_MIRROR_ALTERED",
                    f"the store's registry history of {Web3.to_checksum_address(account)} differs from the chain's",
                    evidence={"chain": [asdict(c) for c in ours], "store": [asdict(c) for c in theirs]},
                )
            )


@dataclass
class _CheckContext:
    """What checking one record needs; copied into each worker process (by fork)."""

    domain: Domain
    registry: RegistryView
    direct: set[str]
    unanchored_limit: float
    now: float
    checker: SignatureChecker = field(default_factory=SignatureChecker)


_WORKER_CONTEXT: _CheckContext | None = None  # set in the parent just before the pool forks


def _worker_signals() -> None:
    """Workers take the default SIGTERM and ignore SIGINT: a parent's handlers (the CLI
    turns SIGTERM into "stop following") must not keep a pool worker alive."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_chunk(records: list[DataRecord]) -> tuple[int, list[Discrepancy]]:
    """(records checked, their discrepancies in order) for one chunk, in a worker or here."""
    ctx = _WORKER_CONTEXT
    assert ctx is not None, "the pool must be forked after the context is set"
    return len(records), [d for record in records for d in _check_record(record, ctx)]


def _check_record(record: DataRecord, ctx: _CheckContext) -> list[Discrepancy]:
    """Every discrepancy of one record on its own: UID, signature, payload, standing, anchoring."""
    problems_found: list[Discrepancy] = []
    domain, checker, registry, direct = ctx.domain, ctx.checker, ctx.registry, ctx.direct
    unanchored_limit, now = ctx.unanchored_limit, ctx.now
    uid = record.uid
    try:
        attestation = Attestation(
            Kind(record.kind),
            record.attester,
            parse_hex(record.subject, 32, "subject"),
            tuple(parse_hex(r, 32, "ref") for r in record.refs),
            parse_hex(record.payload_hash, 32, "payloadHash"),
            record.issued_at,
            record.expires_at,
        )
        computed = hex32(attestation_uid(attestation, domain))
    except ValueError as exc:
        problems_found.append(Discrepancy("PAYLOAD_ALTERED", f"record is not a valid attestation: {exc}", [uid]))
        return problems_found
    if computed != uid:
        problems_found.append(
            Discrepancy(
                "PAYLOAD_ALTERED",
                f"the signed fields were changed: they hash to {computed}",
                [uid],
                evidence={"computed": computed},
            )
        )
        return problems_found
    if not checker.check_digest(
        parse_hex(uid, 32, "uid"), attestation.attester, parse_hex(record.signature, 65, "signature")
    ).valid:
        problems_found.append(Discrepancy("PAYLOAD_ALTERED", "the signature does not match the record", [uid]))
    try:
        disclosure = Disclosure.from_json({"fieldHashes": record.field_hashes, "fields": record.fields})
        problems = disclosure.problems(attestation.payload_hash)
    except ValueError as exc:
        problems = [str(exc)]
    if problems:
        problems_found.append(Discrepancy("PAYLOAD_ALTERED", "; ".join(problems), [uid]))
    problem = registry.standing(attestation.attester, attestation.issued_at).allows(attestation.kind.required_roles)
    if problem is not None:
        problems_found.append(
            Discrepancy(
                "KEY_NOT_VALID_AT_SIGNING",
                f"{attestation.attester} could not sign a {attestation.kind.type_name} at "
                f"{attestation.issued_at} per the chain's registry ({problem.value})",
                [uid],
            )
        )
    if record.direct:
        if uid not in direct:
            problems_found.append(
                Discrepancy(
                    "NOT_SEEN_ON_CHAIN",
                    "marked as recorded directly, but the ledger contract has no such record",
                    [uid],
                )
            )
    elif record.batch_index is None and now - record.received_at > unanchored_limit:
        problems_found.append(
            Discrepancy(
                "UNANCHORED_TOO_LONG", f"acknowledged {now - record.received_at:,.0f}s ago and still in no batch", [uid]
            )
        )
    return problems_found


# ------------------------------------------------------------------------ reports


def html_report(report: ReplayReport) -> str:
    """A self-contained HTML page: summary, per-batch table, discrepancies, and a chart of
    attestations anchored over time (inline SVG, no scripts, no network)."""
    data = report.to_json()
    summary = data["summary"]
    verdict = "No discrepancies" if report.clean else f"{len(report.discrepancies)} discrepancies"
    points, total = [], 0
    for batch in sorted(report.batches, key=lambda b: b["time"]):
        total += batch["count"]
        points.append((batch["time"], total))
    chart = _svg_chart(points)
    rows = "".join(
        f"<tr class='{'bad' if b['status'] != 'ok' else ''}'><td>{b['index']}</td><td><code>{b['root']}</code></td>"
        f"<td>{b['count']}</td><td>{b['present']}</td><td>{b['block']}</td><td>{html.escape(b['status'])}</td></tr>"
        for b in report.batches
    )
    issues = (
        "".join(
            f"<li><b>{html.escape(d.kind)}</b>{f' (batch {d.batch})' if d.batch is not None else ''}: "
            f"{html.escape(d.message)}<br><small>{html.escape(', '.join(d.uids[:5]))}</small>"
            f"{'<pre>' + html.escape(json.dumps(d.evidence, indent=1)[:2000]) + '</pre>' if d.evidence else ''}</li>"
            for d in report.discrepancies
        )
        or "<li>none</li>"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Ledger replay report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;
padding:2px 6px}} .bad{{background:#fdd}} code{{font-size:80%}}</style></head><body>
<h1>Ledger replay report: {html.escape(verdict)}</h1>
<p>Deployment {html.escape(json.dumps(data["deployment"]))}, blocks {report.from_block}-{report.to_block}.
{summary["attestations"]} attestations in {summary["batches"]} batches replayed in {summary["seconds"]} s.</p>
<h2>Attestations anchored over time</h2>{chart}
<h2>Discrepancies</h2><ul>{issues}</ul>
<h2>Batches</h2><table><tr><th>index</th><th>root</th><th>anchored</th><th>present</th><th>block</th>
<th>status</th></tr>{rows}</table></body></html>"""


def _svg_chart(points: list[tuple[int, int]]) -> str:
    if not points:
        return "<p>No batches anchored.</p>"
    width, height = 600, 200
    t0, t1 = points[0][0], max(points[-1][0], points[0][0] + 1)
    top = max(p[1] for p in points)
    coords = " ".join(
        f"{40 + (t - t0) / (t1 - t0) * (width - 50):.1f},{height - 20 - n / top * (height - 40):.1f}" for t, n in points
    )
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='cumulative attestations anchored'>"
        f"<polyline fill='none' stroke='#2a6' stroke-width='2' points='{coords}'/>"
        f"<text x='2' y='15' font-size='11'>{top}</text><text x='2' y='{height - 22}' font-size='11'>0</text>"
        "</svg>"
    )


def replay_deployment(manifest: Manifest, rpc_url: str) -> Deployment:
    return Deployment(Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30})), manifest)
