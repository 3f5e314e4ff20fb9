"""The replay itself: chain first, then the data streamed against it, then each batch."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from ledger.chain.client import Deployment
from ledger.eip712 import Domain
from ledger.hashing import hex32, parse_hex

from .chain import ReplayedRegistry, ReplayState, read_chain, recheck_cached_batches, reread_if_rewritten
from .checks import (
    CHECK_CHUNK,
    CheckContext,
    check_all,
    check_batch,
    check_sequence,
    compare_registry,
    read_stored_registry,
)
from .report import Discrepancy, Progress, ReplayReport
from .sources import DataRecord


def replay(
    deployment: Deployment,
    data: Iterator[DataRecord],
    *,
    state: ReplayState | None = None,
    expected_total: int = 0,
    unanchored_limit: float = 3600.0,
    store_registry: sessionmaker[Session] | None = None,
    registry_lag: float = 600.0,
    registry_confirmations: int = 1,
    head_wait: float = 15.0,
    store_batches: dict[int, str] | None = None,
    progress: Progress | None = None,
    now: float | None = None,
    jobs: int = 1,
) -> tuple[ReplayReport, ReplayState]:
    """Replay `deployment`'s chain history against `data` and report every discrepancy.

    With `state` (a checkpoint of an earlier replay), only new blocks are read and the
    data of batches already checked is skipped. With `jobs` > 1 the per-record checks
    (UID, signature, payload, standing) run in that many forked worker processes, in
    chunks, and their findings are reported in the data's order. With `store_registry`
    (a node's store), its copy of the registry is compared with the chain's, allowing it
    to lag a change by `registry_lag` seconds once the change has `registry_confirmations`
    (the node's own setting) (`checks.compare_registry`); when the store's indexer is past
    the head this replay reads (its node may read another, further RPC endpoint), the
    replay waits up to `head_wait` seconds for its own endpoint to catch up before judging.
    Returns the report and the new state.
    """
    started = time.monotonic()
    now = time.time() if now is None else now
    manifest = deployment.manifest
    # The store's copy of the registry is read before the head: its indexer cannot then
    # have been past the head (`compare_registry`).
    stored = read_stored_registry(store_registry) if store_registry is not None else None
    head = int(deployment.w3.eth.block_number)
    deadline = time.monotonic() + head_wait
    while stored is not None and stored.next_block is not None and stored.next_block - 1 > head:
        if time.monotonic() >= deadline:
            break  # judged as it is: a cursor beyond the chain's head (`compare_registry`)
        time.sleep(0.5)
        head = int(deployment.w3.eth.block_number)
    state = state or ReplayState(next_block=manifest.deployment_block)
    report = ReplayReport(
        {"chainId": manifest.chain_id, "ledger": manifest.ledger, "registry": manifest.registry},
        state.next_block,
        head,
    )
    recheck_cached_batches(deployment, state, report)
    reread_if_rewritten(deployment, state, report)
    read_chain(deployment, state, head)
    check_sequence(state, report)
    registry = ReplayedRegistry(state.history)
    if stored is not None:
        times: dict[int, int] = {}

        def block_time(number: int) -> int:
            if number not in times:
                times[number] = int(deployment.w3.eth.get_block(number)["timestamp"])
            return times[number]

        compare_registry(
            state,
            stored,
            head,
            report,
            now=now,
            lag=registry_lag,
            confirmations=registry_confirmations,
            block_time=block_time,
        )
    ctx = CheckContext(Domain(manifest.chain_id, manifest.ledger), registry, state.direct, unanchored_limit, now)
    seen_per_batch: dict[int, list[bytes]] = defaultdict(list)
    oldest: dict[int, float] = {}
    done = 0

    def chunks() -> Iterator[list[DataRecord]]:
        """The records still to check, in chunks; batch bookkeeping happens here."""
        nonlocal done
        chunk: list[DataRecord] = []
        for record in data:
            anchored_in = ([record.batch_index] if record.batch_index is not None else []) + record.also_in
            if anchored_in and all(index in state.checked_batches for index in anchored_in):
                report.skipped += 1
                continue
            done += 1
            revokers = state.revocations.get(record.uid)
            if revokers and record.attester.lower() in {r.lower() for r in revokers}:
                report.revoked.append(record.uid)  # revoked by its own attester, on chain
            for index in (i for i in anchored_in if i not in state.checked_batches):
                seen_per_batch[index].append(parse_hex(record.uid, 32, "uid"))
                oldest[index] = min(oldest.get(index, now), record.received_at)
            chunk.append(record)
            if len(chunk) == CHECK_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    checked = 0
    for found in check_all(chunks(), ctx, jobs):
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
        status = check_batch(batch, uids, store_batches, report)
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
