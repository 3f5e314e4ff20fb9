"""Mirroring with batches fetched and checked ahead in forked worker processes
(`provenance mirror --jobs N`): the same outcome as checking in one process — every
batch stored in chain order, checked against its on-chain root, nothing stored twice —
and an unreachable first peer still reported and filled by the next one."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import mirror as mirror_module
from ledger import public_records
from ledger.core import Ledger
from ledger.mirror import mirror
from ledger.peers import HttpPeer
from ledger.store.models import AttestationRow, BatchRow

from .scenario import Story
from .test_api import Server
from .test_federation import node_a, node_b, peer, second_database_url  # noqa: F401 - fixtures


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once the socket is closed


def _anchor_in_small_batches(node: Ledger, records: int, batch_size: int) -> list[str]:
    story = Story(node)
    uids = [story.asset() for _ in range(records)]
    worker = node.anchoring_worker(confirmations=1, max_age=0.0)
    worker.max_batch = batch_size
    w3 = node.deployment.w3
    worker.drain(mine=lambda: w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
    for _ in range(2):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return uids


def test_workers_check_every_batch_and_the_node_stores_each_once_in_order(
    node_a: tuple[Ledger, Server],  # noqa: F811 - the fixture imported above
    node_b: tuple[Ledger, Server],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, server_a = node_a
    b, _ = node_b
    uids = _anchor_in_small_batches(a, records=9, batch_size=2)
    batches = b.chain_view.snapshot(max_age=0).confirmed_batches(b.settings.confirmations)
    assert batches >= 5, "the story must give the workers several batches"
    checked_here: list[int] = []
    real_check = public_records.check_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        checked_here.append(1)  # in a forked worker this appends to the worker's own copy
        return real_check(*args, **kwargs)

    monkeypatch.setattr(public_records, "check_batch", counting)
    report = mirror(b, [peer(server_a)], jobs=2)

    assert (report.gaps, report.problems) == ([], [])
    assert report.batches_stored == batches
    assert checked_here == [], "the batches were checked in this process, not in the workers"
    stored = {uid for uid in uids if b.get_attestation(uid) is not None}
    assert stored == set(uids)
    watermark = b.completeness.watermark(b.chain_view.snapshot(max_age=0))
    assert watermark.through == batches - 1, watermark.describe()


def test_an_unreachable_first_peer_is_reported_per_batch_and_the_next_peer_fills_it(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
) -> None:
    a, server_a = node_a
    b, _ = node_b
    uids = _anchor_in_small_batches(a, records=9, batch_size=2)
    snapshot = b.chain_view.snapshot(max_age=0)
    batches = snapshot.confirmed_batches(b.settings.confirmations)
    assert batches >= 5, "the story must give the workers several batches to race over"

    unreachable = HttpPeer(f"http://127.0.0.1:{_closed_port()}", timeout=2.0)
    report = mirror(b, [unreachable, peer(server_a)], jobs=2)

    assert report.gaps == []
    assert report.batches_stored == report.batches_checked == batches
    anchored = sum(snapshot.batch_count(i) or 0 for i in range(batches))
    assert report.records_stored == anchored >= len(uids)
    assert {p.what for p in report.problems} == {"UNREACHABLE"}
    assert {p.batch for p in report.problems} == set(range(batches)), "every batch was first asked of the dead peer"
    for uid in uids:
        assert b.get_attestation(uid) is not None, f"{uid} was not mirrored"
    watermark = b.completeness.watermark(b.chain_view.snapshot(max_age=0))
    assert watermark.through == batches - 1, watermark.describe()

    again = mirror(b, [peer(server_a)], jobs=2)
    assert (again.batches_checked, again.records_stored) == (0, 0), "a second pass (a restart) has nothing to do"


class _KilledWhenAsked:
    """A real peer that kills the process asking it for batch `index` (SIGKILL: no
    cleanup runs, as in a power cut or an OOM kill)."""

    def __init__(self, inner: HttpPeer, index: int) -> None:
        self.inner, self.index, self.name = inner, index, f"killing {inner.name}"

    def batch(self, index: int, records: int) -> object:
        if index == self.index:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.batch(index, records)

    def direct(self, uid: str) -> object:
        return self.inner.direct(uid)

    def for_worker(self) -> _KilledWhenAsked:
        return self


def _held(node: Ledger) -> dict[int, tuple[int, int]]:
    """chain index -> (records the chain anchors in it, records held under it)."""
    with node.sessions() as session:
        return {
            index: (count, held)
            for index, count, held in session.execute(
                select(BatchRow.chain_index, BatchRow.count, func.count(AttestationRow.id))
                .join(AttestationRow, AttestationRow.batch_id == BatchRow.id, isouter=True)
                .group_by(BatchRow.id)
            )
        }


def test_a_catch_up_killed_midway_leaves_whole_groups_of_batches_and_the_next_run_completes(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches are committed a group at a time: a process killed in the middle of a group
    leaves the groups before it, whole, and nothing of the one in progress; the next run
    resumes from there and completes the copy."""
    a, server_a = node_a
    b, _ = node_b
    uids = _anchor_in_small_batches(a, records=9, batch_size=2)
    batches = b.chain_view.snapshot(max_age=0).confirmed_batches(b.settings.confirmations)
    assert batches >= 5
    # Groups of two 2-record batches, never closed early by the clock.
    monkeypatch.setattr(mirror_module, "GROUP_RECORDS", 3)
    monkeypatch.setattr(mirror_module, "GROUP_SECONDS", 1e9)

    def run_until_killed() -> None:
        b.engine.dispose(close=False)  # the child's own connections, not the parent's
        mirror(b, [_KilledWhenAsked(peer(server_a), 3)], jobs=1)

    child = multiprocessing.get_context("fork").Process(target=run_until_killed)
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL, child.exitcode

    held = _held(b)
    assert sorted(held) == [0, 1], f"batches 0 and 1 were committed together, batch 2 was in progress: {held}"
    assert all(count == records for count, records in held.values()), held

    report = mirror(b, [peer(server_a)], jobs=1)
    assert (report.gaps, report.problems) == ([], [])
    assert report.batches_stored == batches - 2
    assert {uid for uid in uids if b.get_attestation(uid) is not None} == set(uids)
    assert all(count == records for count, records in _held(b).values())
    watermark = b.completeness.watermark(b.chain_view.snapshot(max_age=0))
    assert watermark.through == batches - 1, watermark.describe()
