"""The checks of a replay: every record on its own (UID, signature, payload commitment,
the signer's standing at signing time, anchoring), in this process or in forked workers;
each batch's data against its root on chain; the batch sequence; and the store's copy of
the registry against the chain's."""

from __future__ import annotations

import multiprocessing
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from ledger.eip712 import Attestation, Domain, attestation_uid
from ledger.hashing import hex32, parse_hex
from ledger.kinds import Kind
from ledger.merkle import MerkleTree
from ledger.payload import Disclosure
from ledger.registry_view import Checkpoint, RegistryView
from ledger.signatures import SignatureChecker

from .chain import ChainBatch, ReplayState
from .report import Discrepancy, ReplayReport
from .sources import DataRecord

CHECK_CHUNK = 500


def check_all(
    chunks: Iterator[list[DataRecord]], ctx: CheckContext, jobs: int
) -> Iterator[tuple[int, list[Discrepancy]]]:
    """(records checked, discrepancies) per chunk, in order: here, or in `jobs` forked workers."""
    global _WORKER_CONTEXT

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


def check_batch(
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


def check_sequence(state: ReplayState, report: ReplayReport) -> None:
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


_ACCOUNT = re.compile(r"0x[0-9a-f]{40}")


def _named(account: str) -> str:
    """An account as a report names it: checksummed when it is an address, else quoted."""
    return Web3.to_checksum_address(account) if _ACCOUNT.fullmatch(account) else repr(account)


@dataclass(frozen=True)
class StoredRegistry:
    """The store's copy of the registry as one statement read it: every checkpoint row
    (account, checkpoint, the block of its event: None when no event row holds it) in
    the order they were stored, and the indexer's cursor (the next block it would read;
    None when it has none)."""

    rows: list[tuple[object, Checkpoint, int | None]]
    next_block: int | None
    ids: list[object] = field(default_factory=list)  # the rows' ids, in the order read


def read_stored_registry(store: sessionmaker[Session]) -> StoredRegistry:
    """The store's copy of the registry and its indexer's cursor, in ONE statement, so
    both are of one moment (two statements under READ COMMITTED could see the indexer
    commit between them: an honest row beyond the cursor read first). Every checkpoint
    row is read, with or without an event row, as the node's own registry view reads them."""
    from sqlalchemy import literal, null, union_all

    from ledger.indexer import CURSOR
    from ledger.store.models import ChainEventRow, IndexerCursorRow, RoleCheckpointRow

    r, e, c = RoleCheckpointRow, ChainEventRow, IndexerCursorRow
    checkpoints = select(
        literal(0).label("is_cursor"),
        r.id,
        r.account,
        r.since,
        r.roles,
        r.granted,
        r.suspended,
        r.retired,
        r.valid_from,
        r.valid_until,
        e.block_number,
        null().label("next_block"),
    ).select_from(r.__table__.outerjoin(e.__table__, e.id == r.event_id))
    cursor = select(literal(1), *(null() for _ in range(10)), c.next_block).where(c.name == CURSOR)
    both = union_all(checkpoints, cursor).subquery()
    with store() as session:
        read = session.execute(select(both).order_by(both.c.is_cursor, both.c.id)).all()
    rows: list[tuple[object, Checkpoint, int | None]] = [
        (
            row.account,  # as stored: the node's registry view matches it exactly
            Checkpoint(
                row.since,
                row.roles,
                row.granted,
                bool(row.suspended),
                bool(row.retired),
                row.valid_from,
                row.valid_until,
            ),
            row.block_number,
        )
        for row in read
        if not row.is_cursor
    ]
    next_block = next((row.next_block for row in read if row.is_cursor), None)
    return StoredRegistry(rows, next_block, [row.id for row in read if not row.is_cursor])


def compare_registry(
    state: ReplayState,
    stored: StoredRegistry,
    head: int,
    report: ReplayReport,
    *,
    now: float,
    lag: float,
    confirmations: int,
    block_time: Callable[[int], int],
) -> None:
    """Compare the store's copy of the registry (`stored`, read BEFORE the chain's head
    `head` was) with the chain's history in `state` (read through `head`).

    The node indexes the chain every pass of its anchoring worker, so for a moment after a
    registry change its copy is behind the chain: until the change is late (below), that is
    stated in the report (`storeRegistry`), not reported. Reported:
    - any difference through the block the indexer's cursor says it has reached (a row
      edited, added or deleted there), and any row in a block the cursor has not reached
      or without an event (the indexer stores each range with its cursor in one
      transaction, so it never writes either);
    - a cursor beyond `head` (the store was read first, and the replay waited for its own
      endpoint to reach the cursor: an honest indexer cannot be further along);
    - a registry change the copy does not hold, whatever the cursor says, once it has been
      confirmed (`confirmations`, as the node's indexer counts them) for longer than `lag`
      seconds by the time of its confirming block (`block_time`): a lowered or deleted
      cursor does not make a withheld change a lag;
    - a row naming its account otherwise than the indexer writes it (0x and 40 lowercase
      hex digits: the node's view matches the text exactly, so another spelling hides the
      row from it), and rows sharing an id or having none (their order is the history's).
    """
    indexed = stored.next_block - 1 if stored.next_block is not None else None  # the last block indexed
    report.store_registry = {"indexedThroughBlock": indexed, "chainHead": head}
    if indexed is not None and indexed > head:
        report.discrepancies.append(
            Discrepancy(
                "REGISTRY_MIRROR_ALTERED",
                f"the store says its copy of the registry is indexed through block {indexed}, "
                f"beyond the chain's head ({head})",
                evidence={"indexedThroughBlock": indexed, "chainHead": head},
            )
        )
    through = min(indexed, head) if indexed is not None else -1
    theirs: dict[str, list[Checkpoint]] = defaultdict(list)
    for account, checkpoint, _block in stored.rows:
        if not (isinstance(account, str) and _ACCOUNT.fullmatch(account)):
            report.discrepancies.append(
                Discrepancy(
                    "REGISTRY_MIRROR_ALTERED",
                    f"a row of the store's registry names the account {account!r}, not as the indexer "
                    "writes one (0x and 40 lowercase hex digits)",
                    evidence={"account": repr(account), "store": asdict(checkpoint)},
                )
            )
        theirs[account if isinstance(account, str) else repr(account)].append(checkpoint)
    if None in stored.ids or len(set(stored.ids)) != len(stored.ids):
        report.discrepancies.append(
            Discrepancy(
                "REGISTRY_MIRROR_ALTERED",
                "rows of the store's registry share an id or have none: their order is not the indexer's",
            )
        )
    ours: dict[str, list[Checkpoint]] = {}
    for account, checkpoints in state.history.items():
        blocks = state.history_blocks.get(account, [])
        ours[account] = [c for c, block in zip(checkpoints, blocks, strict=True) if block <= through]
        for checkpoint, block in zip(checkpoints, blocks, strict=True):
            confirmed_at = block + max(confirmations - 1, 0)  # as the node's indexer counts
            if block <= through or confirmed_at > head or block_time(confirmed_at) >= now - lag:
                continue
            report.discrepancies.append(
                Discrepancy(
                    "REGISTRY_MIRROR_ALTERED",
                    f"the store's copy of the registry lacks the change to {_named(account)} at block {block}, "
                    f"confirmed longer ago than the allowed lag ({lag:.0f} s); its indexer says it reached "
                    f"{'no block' if indexed is None else f'block {indexed}'}",
                    evidence={"block": block, "chain": asdict(checkpoint), "indexedThroughBlock": indexed},
                )
            )
            break  # one per account
    for account in sorted(set(theirs) | {a for a, cs in ours.items() if cs}):
        if ours.get(account, []) != theirs.get(account, []):
            report.discrepancies.append(
                Discrepancy(
                    "REGISTRY_MIRROR_ALTERED",
                    f"the store's registry history of {_named(account)} differs from the chain's "
                    f"(compared through block {through})",
                    evidence={
                        "chain": [asdict(c) for c in ours.get(account, [])],
                        "store": [asdict(c) for c in theirs.get(account, [])],
                    },
                )
            )


@dataclass
class CheckContext:
    """What checking one record needs; copied into each worker process (by fork)."""

    domain: Domain
    registry: RegistryView
    direct: set[str]
    unanchored_limit: float
    now: float
    checker: SignatureChecker = field(default_factory=SignatureChecker)


_WORKER_CONTEXT: CheckContext | None = None  # set in the parent just before the pool forks


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


def _check_record(record: DataRecord, ctx: CheckContext) -> list[Discrepancy]:
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
