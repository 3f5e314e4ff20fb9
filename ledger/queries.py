"""Read-only views of the store for listings (custody graphs, batches): what the HTTP API
and the command line show, computed here so that neither builds queries itself."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .hashing import checksum_address
from .kinds import Kind
from .store.models import AttestationRefRow, AttestationRow, BatchRow
from .submission import subject_id


def lot_custody(sessions: sessionmaker[Session], lot: str) -> dict[str, Any]:
    """The attestations whose subject is `lot:<lot>` and the references between them."""
    subject = "0x" + subject_id(f"lot:{lot}").hex()
    with sessions() as session:
        rows = session.scalars(select(AttestationRow).where(AttestationRow.subject == subject)).all()
        uids = [r.uid for r in rows]
        edges = (
            session.execute(
                select(AttestationRefRow.uid, AttestationRefRow.ref).where(AttestationRefRow.uid.in_(uids))
            ).all()
            if uids
            else []
        )
    nodes = [
        {
            "uid": r.uid,
            "kind": Kind(r.kind).name,
            "attester": checksum_address(r.attester),
            "issuedAt": r.issued_at,
            "fields": {k: v["value"] for k, v in json.loads(r.disclosed).items()},
        }
        for r in rows
    ]
    return {"lot": lot, "nodes": nodes, "edges": [{"from": e.ref, "to": e.uid} for e in edges]}


def recent_batches(sessions: sessionmaker[Session], limit: int, before: int | None = None) -> list[dict[str, Any]]:
    """Batches, newest first (at most `limit`, below chain index `before` if given)."""
    with sessions() as session:
        query = select(BatchRow).order_by(BatchRow.chain_index.desc()).limit(limit)
        if before is not None:
            query = query.where(BatchRow.chain_index < before)
        rows = session.scalars(query).all()
    return [
        {
            "index": b.chain_index,
            "root": b.root,
            "previousRoot": b.previous_root,
            "count": b.count,
            "status": b.status,
            "txHash": b.tx_hash,
            "blockNumber": b.block_number,
        }
        for b in rows
    ]
