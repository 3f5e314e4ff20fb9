"""Where a replay reads the attestation data from: the node's store, or an exported
archive (gzipped JSON lines) an auditor replays without the database. Both stream the
records in order, one chunk at a time, never the whole ledger in memory."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ledger.ports import Node

ARCHIVE_FORMAT = "provenance-ledger/archive@1"


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
    also_in: list[int] = field(default_factory=list)  # later batches that anchored it again


@dataclass(frozen=True)
class StoreFacts:
    """What the node's store claims, for the replay to hold against the chain: how many
    records it holds and which root it recorded for each batch index."""

    total: int
    batch_roots: dict[int, str]


def store_facts(ledger: Node) -> StoreFacts:
    """The store's record count and its batch rows (chain index -> root)."""
    from sqlalchemy import func

    from ledger.store.models import AttestationRow, BatchRow

    with ledger.sessions() as session:
        total = int(session.scalar(select(func.count(AttestationRow.id))) or 0)
        rows = session.execute(select(BatchRow.chain_index, BatchRow.root))
        return StoreFacts(total, {row.chain_index: row.root for row in rows})


def store_source(ledger: Node) -> Iterator[DataRecord]:
    """Stream the store's attestations (public fields only), batch by batch."""
    from ledger.store.models import AttestationRefRow, AttestationRow, BatchExtraMemberRow, BatchRow

    with ledger.sessions() as session:
        batch_index = {row.id: row.chain_index for row in session.execute(select(BatchRow.id, BatchRow.chain_index))}
        again: dict[str, list[int]] = defaultdict(list)
        for extra in session.execute(select(BatchExtraMemberRow.uid, BatchExtraMemberRow.batch_id)):
            again[extra.uid].append(batch_index[extra.batch_id])
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
                    also_in=sorted(again.get(row.uid, [])),
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
