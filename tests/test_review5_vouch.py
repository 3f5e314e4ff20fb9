"""Review 5 finding on the mirror vouching for batches to the completeness monitor
(ledger/mirror.py _GroupedWriter, ledger/completeness.py vouch). A plain failing test."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import insert, select, update

from ledger.anchoring import ANCHORED
from ledger.completeness import CompletenessMonitor
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.mirror import mirror
from ledger.peers import ArchivePeer
from ledger.store.models import AttestationRefRow, AttestationRow, BatchRow

from .test_api import Server
from .test_archive import archived_clean_export
from .test_federation import node_a, node_b, second_database_url  # noqa: F401 - fixtures


def test_a_batch_the_mirror_did_not_store_is_not_vouched_for(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The receiving node's database administrator files a batch row under chain index 0
    with some other root (what an own batch that lost the race for the index looks like)
    and, under it, as many records as the chain's batch 0 counts, but not its records:
    one of them (here the last, say a customs finding or a watch-list entry) left out
    and a forged row in its place. The mirror wants batch 0, `_store_batch` finds the
    index held under another root and stores nothing (returns 0), yet `mirror` still
    calls `writer.stored(0, root, n)` and the commit vouches (0, root, n) to the
    monitor. The administrator then writes the chain's root into the batch row. The
    monitor sees root and count match and its cache says 'rebuilt': batch 0 is counted
    complete though its members never rebuilt that root (a fresh monitor finds the gap),
    and the withheld record's flag is lost while verdicts say the node is complete."""
    a, _ = node_a
    b, _ = node_b
    archive = archived_clean_export(a, tmp_path)
    snapshot = b.chain_view.snapshot(max_age=0)
    root, block = snapshot.batch(0)  # type: ignore[misc]
    count = snapshot.batch_count(0)
    table = AttestationRow.__table__
    with a.engine.connect() as conn:
        a_batch = conn.scalar(select(BatchRow.id).where(BatchRow.chain_index == 0))
        rows = [dict(r) for r in conn.execute(select(table).where(table.c.batch_id == a_batch)).mappings()]
    assert len(rows) == count and count >= 2
    # Left out: the watch-list entry. In its place: a copy of another record under a made-up UID
    # (not a production or licence, whose reference rows are re-derived per process).
    hidden = next(r for r in rows if r["kind"] == int(Kind.WATCHLIST))
    source = next(r for r in rows if r["kind"] not in (int(Kind.WATCHLIST), int(Kind.PRODUCTION), int(Kind.LICENCE)))
    kept = [{k: v for k, v in r.items() if k != "id"} for r in rows if r is not hidden]
    forged = {**{k: v for k, v in source.items() if k != "id"}, "uid": "0x" + "ab" * 32}
    uids = [r["uid"] for r in kept]
    with a.engine.connect() as conn:
        refs = [
            dict(r)
            for r in conn.execute(select(AttestationRefRow.__table__).where(AttestationRefRow.uid.in_(uids))).mappings()
        ]
    now = time.time()
    with b.engine.begin() as conn:
        b_batch = conn.execute(
            insert(BatchRow).values(
                chain_index=0,
                root="0x" + "11" * 32,
                previous_root="0x" + "00" * 32,
                count=count,
                status=ANCHORED,
                block_number=block,
                attempts=0,
                sealed_at=now,
                anchored_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(insert(AttestationRow), [{**r, "batch_id": b_batch} for r in [*kept, forged]])
        if refs:
            conn.execute(insert(AttestationRefRow), refs)
    mirror(b, [ArchivePeer(archive)])
    with b.engine.begin() as conn:
        conn.execute(update(BatchRow).where(BatchRow.chain_index == 0).values(root=root))
    now_snapshot = b.chain_view.snapshot(max_age=0)
    fresh = CompletenessMonitor(b.sessions, b.settings.confirmations).refresh(now_snapshot)
    assert 0 in fresh.gaps, fresh.to_json()  # batch 0's members do not rebuild its root
    measured = b.completeness.refresh(now_snapshot)
    assert not measured.index_problems, measured.index_problems  # nothing else gives the forgery away
    assert 0 in measured.gaps and not measured.complete, measured.to_json()
