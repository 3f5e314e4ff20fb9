"""Auditor replay: the chain is the reference; every kind of tampering is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, select, text, update
from sqlalchemy.orm import Session

from ledger import audit
from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send
from ledger.core import Ledger
from ledger.store.models import (
    AttestationRefRow,
    AttestationRow,
    BatchRow,
    ChainEventRow,
    IndexerCursorRow,
    RoleCheckpointRow,
    WatchlistClassRow,
)

from .conftest import REPO
from .scenario import Story, actor, productions


@pytest.fixture
def populated(ledger_env: Ledger, tmp_path: Path) -> dict[str, Any]:
    story = Story(ledger_env)
    ids = story.clean_export()
    ledger_env.ingest_many(productions(ledger_env, 20))  # type: ignore[arg-type]
    story.anchor()  # the node's anchoring worker also indexes the registry's events into the store
    manifest = ledger_env.deployment.manifest.save(tmp_path / "deployment.json")
    env = {
        **os.environ,
        "PROVENANCE_HOME": str(tmp_path),
        "PROVENANCE_MANIFEST": str(manifest),
        "PROVENANCE_DATABASE_URL": ledger_env.settings.resolved_database_url,
        "PROVENANCE_RPC_URL": ledger_env.settings.resolved_rpc_url,
    }
    return {"ledger": ledger_env, "ids": ids, "env": env, "dir": tmp_path}


def audit_cli(ctx: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """`provenance audit ARGS` run as its own process in the fixture's environment."""
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", "audit", *args],
        cwd=REPO,
        env=ctx["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def replay(ctx: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    out = ctx["dir"] / "report.json"
    html = ctx["dir"] / "report.html"
    result = audit_cli(ctx, "replay", "--json-out", str(out), "--html-out", str(html), "--progress", *extra)
    assert result.returncode in (0, 4), result.stderr
    assert "replay [" in result.stderr  # the progress bar with rate and ETA
    assert html.read_text().startswith("<!doctype html>")
    return result.returncode, json.loads(out.read_text())


def kinds(report: dict[str, Any]) -> set[str]:
    return {d["kind"] for d in report["discrepancies"]}


def test_a_clean_ledger_replays_with_no_discrepancy_and_exit_0(populated: dict[str, Any]) -> None:
    code, report = replay(populated)
    assert code == 0 and report["discrepancies"] == []
    assert report["summary"]["attestations"] == 30 and report["summary"]["batches"] >= 1
    assert all(b["status"] == "ok" for b in report["batches"])
    assert "<svg" in (populated["dir"] / "report.html").read_text()


def test_a_payload_edited_in_the_database_is_reported(populated: dict[str, Any]) -> None:
    ledger, uid = populated["ledger"], populated["ids"]["made"]
    with ledger.sessions.begin() as session:
        row = session.scalars(select(AttestationRow).where(AttestationRow.uid == uid)).one()
        fields = json.loads(row.disclosed)
        fields["quantity"]["value"] = 999_999
        row.disclosed = json.dumps(fields)
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"PAYLOAD_ALTERED"}
    assert report["discrepancies"][0]["uids"] == [uid]


def test_a_deleted_attestation_is_reported_as_anchored_without_data(populated: dict[str, Any]) -> None:
    ledger, uid = populated["ledger"], populated["ids"]["watch"]
    with ledger.sessions.begin() as session:
        session.execute(delete(AttestationRefRow).where(AttestationRefRow.uid == uid))
        session.execute(delete(WatchlistClassRow).where(WatchlistClassRow.uid == uid))  # the entry's index rows too
        session.execute(delete(AttestationRow).where(AttestationRow.uid == uid))
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"ANCHORED_UID_WITHOUT_DATA"}


def test_an_altered_batch_row_is_reported(populated: dict[str, Any]) -> None:
    ledger = populated["ledger"]
    with ledger.sessions.begin() as session:
        session.execute(update(BatchRow).where(BatchRow.chain_index == 0).values(root="0x" + "ab" * 32))
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"BATCH_ROOT_MISMATCH"}
    assert report["discrepancies"][0]["batch"] == 0


def test_a_backdated_registry_role_is_reported(populated: dict[str, Any]) -> None:
    ledger = populated["ledger"]
    with ledger.sessions.begin() as session:
        first = session.scalars(select(RoleCheckpointRow).order_by(RoleCheckpointRow.id.desc()).limit(1)).one()
        first.since -= 86_400
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}


def _suspend_on_chain(ledger: Ledger, name: str) -> None:
    """A registry change the node has not indexed yet (no anchoring pass after it)."""
    call_and_send(
        ledger.deployment.w3,
        dev_account(0),
        ledger.deployment.registry.functions.suspend(actor(name).address, b"s" * 32),
    )


def test_a_registry_change_not_yet_indexed_is_no_alteration(populated: dict[str, Any]) -> None:
    # The node indexes the chain's events every pass of its anchoring worker: right after a
    # registry change, its copy is behind the chain, not altered. The replay compares the
    # copy through the block the store says it has indexed, and says how far that is.
    ledger = populated["ledger"]
    _suspend_on_chain(ledger, "importer")
    code, report = replay(populated)
    assert code == 0 and report["discrepancies"] == []
    indexed = report["storeRegistry"]["indexedThroughBlock"]
    assert indexed is not None and indexed < report["blocks"][1]


def _suspended_and_indexed(ledger: Ledger) -> RoleCheckpointRow:
    """The importer suspended on chain and the suspension indexed into the store (its row)."""
    _suspend_on_chain(ledger, "importer")
    Story(ledger).anchor()
    ledger.indexer.sync()  # the worker indexes at most every 2 s: index now
    with ledger.sessions() as session:
        row = session.scalars(select(RoleCheckpointRow).order_by(RoleCheckpointRow.id.desc()).limit(1)).one()
        session.expunge(row)
    assert row.suspended and row.account == actor("importer").address.lower()
    return row


def _forge_reinstatement(ledger: Ledger, suspension: RoleCheckpointRow, **row: Any) -> None:
    """An administrator's row undoing `suspension` in the store's copy of the registry."""
    with ledger.sessions.begin() as session:
        session.add(
            RoleCheckpointRow(
                account=suspension.account,
                since=suspension.since,
                roles=suspension.granted,
                granted=suspension.granted,
                suspended=False,
                retired=False,
                valid_from=suspension.valid_from,
                valid_until=suspension.valid_until,
                **row,
            )
        )


def _forged_event(session: Session, ledger: Ledger, block: int, tx_byte: str) -> int:
    """An administrator's chain_events row for a registry event no block holds; its id."""
    row = ChainEventRow(
        contract=ledger.deployment.manifest.registry,
        event="EffectiveRolesChanged",
        block_number=block,
        block_hash="0x" + "00" * 32,
        block_time=0,
        tx_hash="0x" + tx_byte * 32,
        log_index=0,
        args="{}",
    )
    session.add(row)
    session.flush()
    return row.id


def _replay_in_process(ledger: Ledger, **options: Any) -> set[str]:
    facts = audit.store_facts(ledger)
    report, _state = audit.replay(
        ledger.deployment,
        audit.store_source(ledger),
        expected_total=facts.total,
        store_registry=ledger.sessions,
        store_batches=facts.batch_roots,
        **options,
    )
    return {d.kind for d in report.discrepancies}


def test_a_deleted_registry_checkpoint_is_reported_once_the_cursor_is_past_it(populated: dict[str, Any]) -> None:
    # An administrator removes a suspension from the store's copy: the cursor says the
    # block was indexed, so the missing row is an alteration, not a lag.
    ledger = populated["ledger"]
    suspension = _suspended_and_indexed(ledger)
    with ledger.sessions.begin() as session:
        session.execute(delete(RoleCheckpointRow).where(RoleCheckpointRow.id == suspension.id))
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}


def test_a_cursor_beyond_the_chain_head_is_reported(populated: dict[str, Any]) -> None:
    # Moving the cursor far ahead would put forged rows "beyond what the replay read":
    # the store cannot have indexed blocks the chain has not made.
    ledger = populated["ledger"]
    with ledger.sessions.begin() as session:
        session.execute(update(IndexerCursorRow).values(next_block=10**9))
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_forged_registry_row_without_an_event_is_reported(populated: dict[str, Any]) -> None:
    # The node's registry view reads every checkpoint row; a forged one with no event row
    # (its foreign key dropped) must not be left out of the comparison by a join.
    ledger = populated["ledger"]
    suspension = _suspended_and_indexed(ledger)
    with ledger.sessions.begin() as session:
        session.execute(text("ALTER TABLE role_checkpoints DROP CONSTRAINT role_checkpoints_event_id_fkey"))
    _forge_reinstatement(ledger, suspension, event_id=10**12)
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}


def test_a_forged_registry_row_kept_at_the_newest_block_is_reported(
    populated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # While a replay reads the chain, blocks keep coming; an administrator's loop keeps a
    # forged row's event and the cursor at the newest block, hoping the row always looks
    # too new to compare. The store is read before the chain's head, so every row it
    # holds is at or below a head the replay reads: the next replay compares it.
    ledger = populated["ledger"]
    suspension = _suspended_and_indexed(ledger)
    w3 = ledger.deployment.w3
    read_chain = audit.replay.__globals__["read_chain"]
    forged: list[int] = []

    def read_chain_while_the_administrator_forges(deployment: Any, state: Any, head: int) -> None:
        read_chain(deployment, state, head)
        for _ in range(3):
            w3.provider.make_request("evm_mine", [])
        newest = int(w3.eth.block_number) - 1
        with ledger.sessions.begin() as session:
            if forged:
                session.execute(update(ChainEventRow).where(ChainEventRow.id == forged[0]).values(block_number=newest))
            else:
                forged.append(_forged_event(session, ledger, newest, "ee"))
            session.execute(update(IndexerCursorRow).values(next_block=newest + 1))
        if len(forged) == 1:
            _forge_reinstatement(ledger, suspension, event_id=forged[0])
            forged.append(-1)  # the row is in; later passes only move it

    monkeypatch.setitem(audit.replay.__globals__, "read_chain", read_chain_while_the_administrator_forges)
    _replay_in_process(ledger)  # forged while this replay ran, after it read the store
    assert "REGISTRY_MIRROR_ALTERED" in _replay_in_process(ledger)


def test_a_withheld_registry_change_is_reported_once_older_than_the_allowed_lag(populated: dict[str, Any]) -> None:
    # Deleting a suspension with its events and lowering the cursor before it makes the
    # copy look merely behind; past the allowed lag, a change the copy lacks is reported
    # whatever the cursor says (and with no cursor at all).
    ledger = populated["ledger"]
    suspension = _suspended_and_indexed(ledger)
    with ledger.sessions.begin() as session:
        block = session.get(ChainEventRow, suspension.event_id).block_number
        later = session.scalars(select(ChainEventRow.id).where(ChainEventRow.block_number >= block)).all()
        session.execute(delete(RoleCheckpointRow).where(RoleCheckpointRow.event_id.in_(later)))
        session.execute(delete(ChainEventRow).where(ChainEventRow.id.in_(later)))
        session.execute(update(IndexerCursorRow).values(next_block=block))
    code, report = replay(populated)
    assert code == 0 and report["storeRegistry"]["indexedThroughBlock"] == block - 1  # within the lag: behind
    code, report = replay(populated, "--registry-lag", "0")
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}
    with ledger.sessions.begin() as session:
        session.execute(delete(RoleCheckpointRow))
        session.execute(delete(IndexerCursorRow))
    code, report = replay(populated, "--registry-lag", "0")
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}
    assert report["storeRegistry"]["indexedThroughBlock"] is None


def test_an_index_committed_while_the_store_is_read_is_no_alteration(populated: dict[str, Any]) -> None:
    # The node's indexer commits right after the replay read the store's copy: the copy
    # and its cursor were read in one statement, so they agree with each other.
    ledger = populated["ledger"]
    _suspend_on_chain(ledger, "importer")  # not indexed yet
    engine = ledger.sessions.kw["bind"]
    fired: list[int] = []

    def index_right_after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not fired and "indexer_cursors" in statement:
            fired.append(1)
            ledger.indexer.sync()

    event.listen(engine, "after_cursor_execute", index_right_after)
    try:
        found = _replay_in_process(ledger)
    finally:
        event.remove(engine, "after_cursor_execute", index_right_after)
    assert fired and found == set()


def test_a_node_reading_a_further_endpoint_than_the_auditor_is_no_alteration(populated: dict[str, Any]) -> None:
    # The node's indexer read blocks the auditor's endpoint has not served yet: the
    # replay waits for them rather than report a cursor "beyond the chain's head".
    ledger = populated["ledger"]
    w3 = ledger.deployment.w3
    ahead = int(w3.eth.block_number) + 3
    with ledger.sessions.begin() as session:
        session.execute(update(IndexerCursorRow).values(next_block=ahead + 1))
    threading.Timer(1.0, lambda: [w3.provider.make_request("evm_mine", []) for _ in range(3)]).start()
    assert _replay_in_process(ledger, head_wait=30.0) == set()


def test_a_registry_row_spelled_otherwise_is_reported(populated: dict[str, Any]) -> None:
    # The node's registry view matches the account's text exactly: the suspension written
    # in capitals is a suspension the node no longer sees.
    ledger = populated["ledger"]
    suspension = _suspended_and_indexed(ledger)
    spelled = "0x" + suspension.account[2:].upper()
    with ledger.sessions.begin() as session:
        session.execute(update(RoleCheckpointRow).where(RoleCheckpointRow.id == suspension.id).values(account=spelled))
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}
    assert any(repr(spelled) in d["message"] for d in report["discrepancies"])


def test_a_junk_registry_row_is_reported_not_a_failed_replay(populated: dict[str, Any]) -> None:
    ledger = populated["ledger"]
    suspension = _suspended_and_indexed(ledger)
    with ledger.sessions.begin() as session:
        event_id = _forged_event(session, ledger, 1, "dd")
    _forge_reinstatement(ledger, suspension, event_id=event_id)
    with ledger.sessions.begin() as session:
        session.execute(update(RoleCheckpointRow).where(RoleCheckpointRow.event_id == event_id).values(account="junk"))
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"REGISTRY_MIRROR_ALTERED"}


def test_a_change_not_yet_confirmed_for_the_node_is_no_alteration_however_old(populated: dict[str, Any]) -> None:
    # A node that waits for 2 confirmations cannot index a change in the newest block,
    # however long the chain stays quiet: it is not late until it is confirmed.
    ledger = populated["ledger"]
    _suspend_on_chain(ledger, "importer")  # the newest block: one confirmation
    ledger.indexer.sync()
    found = _replay_in_process(ledger, now=time.time() + 3600, registry_lag=600.0, registry_confirmations=2)
    assert found == set()


def test_a_resumed_replay_reads_again_what_a_reorganisation_of_registry_blocks_rewrote(
    populated: dict[str, Any],
) -> None:
    # No batch moved: only a registry change the earlier replay had read is gone.
    ledger = populated["ledger"]
    w3 = ledger.deployment.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    _suspend_on_chain(ledger, "importer")
    records = list(audit.store_source(ledger))
    _first, state = audit.replay(ledger.deployment, iter(records))
    assert state.history[actor("importer").address.lower()][-1].suspended
    w3.provider.make_request("evm_revert", [snapshot])
    for _ in range(4):
        w3.provider.make_request("evm_mine", [])
    resumed, state = audit.replay(ledger.deployment, iter(records), state=state)
    assert "REORGANISED" in {d.kind for d in resumed.discrepancies}
    _fresh, scratch = audit.replay(ledger.deployment, iter(records))
    assert state.history == scratch.history and state.history_blocks == scratch.history_blocks


def test_a_checkpoint_file_that_does_not_hold_a_state_is_refused_clearly(populated: dict[str, Any]) -> None:
    checkpoint = populated["dir"] / "replay.checkpoint"
    code, _report = replay(populated, "--checkpoint", str(checkpoint))
    assert code == 0
    saved = json.loads(checkpoint.read_text())
    account = next(iter(saved["historyBlocks"]))
    saved["historyBlocks"][account] = []
    checkpoint.write_text(json.dumps(saved))
    result = audit_cli(populated, "replay", "--checkpoint", str(checkpoint))
    assert result.returncode == 1 and "cannot be resumed from" in result.stderr


def test_an_attestation_inserted_but_never_anchored_is_reported(populated: dict[str, Any]) -> None:
    ledger = populated["ledger"]
    ledger.ingest(productions(ledger, 1, prefix="SNEAK")[0])
    with ledger.sessions.begin() as session:
        session.execute(
            update(AttestationRow).where(AttestationRow.batch_id.is_(None)).values(received_at=time.time() - 7200)
        )
    code, report = replay(populated)
    assert code == 4 and kinds(report) == {"UNANCHORED_TOO_LONG"}


def test_the_archive_replays_the_same_without_the_database(populated: dict[str, Any]) -> None:
    archive = populated["dir"] / "ledger.jsonl.gz"
    export = audit_cli(populated, "export", "--out", str(archive))
    assert export.returncode == 0, export.stderr
    env = {k: v for k, v in populated["env"].items() if k != "PROVENANCE_DATABASE_URL"}
    env["PROVENANCE_HOME"] = str(populated["dir"] / "no-db")
    ctx = {**populated, "env": env}
    code, report = replay(ctx, "--archive", str(archive))
    assert code == 0 and report["summary"]["attestations"] == 30
    assert not (populated["dir"] / "no-db" / "ledger.db").exists()


@pytest.mark.long
def test_revocations_are_applied_and_a_checkpoint_resumes_with_new_blocks_only(populated: dict[str, Any]) -> None:
    ledger, ids = populated["ledger"], populated["ids"]
    checkpoint = populated["dir"] / "replay.checkpoint"
    code, first = replay(populated, "--checkpoint", str(checkpoint))
    assert code == 0 and first["summary"]["attestations"] == 30 and checkpoint.exists()
    # Later: the maker revokes a hand-over (recorded on chain) and more goods are made.
    story = Story(ledger)
    story.revoke(ids["to_carrier"], "maker")
    ledger.ingest_many(productions(ledger, 5, prefix="LATER"))
    time.sleep(1.1)
    story.anchor()
    code, second = replay(populated, "--checkpoint", str(checkpoint))
    assert code == 0, second["discrepancies"]
    assert second["summary"]["skippedAlreadyChecked"] == 30  # the first replay's batches are not redone
    assert second["summary"]["attestations"] == 6  # five productions and the revocation
    assert second["blocks"][0] == first["blocks"][1] + 1  # only new blocks read
    code, full = replay(populated)
    assert code == 0 and full["summary"]["revoked"] == 1 and full["revoked"] == [ids["to_carrier"]]
