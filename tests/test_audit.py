"""Auditor replay: the chain is the reference; every kind of tampering is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send
from ledger.core import Ledger
from ledger.store.models import (
    AttestationRefRow,
    AttestationRow,
    BatchRow,
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


def replay(ctx: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    out = ctx["dir"] / "report.json"
    html = ctx["dir"] / "report.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli",
            "audit",
            "replay",
            "--json-out",
            str(out),
            "--html-out",
            str(html),
            "--progress",
            *extra,
        ],
        cwd=REPO,
        env=ctx["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
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


def test_a_deleted_registry_checkpoint_is_reported_once_the_cursor_is_past_it(
    populated: dict[str, Any],
) -> None:
    # An administrator removes a suspension from the store's copy: the cursor says the
    # block was indexed, so the missing row is an alteration, not a lag.
    ledger = populated["ledger"]
    _suspend_on_chain(ledger, "importer")
    Story(ledger).anchor()  # indexed
    with ledger.sessions.begin() as session:
        last = session.scalars(select(RoleCheckpointRow).order_by(RoleCheckpointRow.id.desc()).limit(1)).one()
        session.delete(last)
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
    export = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "audit", "export", "--out", str(archive)],
        cwd=REPO,
        env=populated["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
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
