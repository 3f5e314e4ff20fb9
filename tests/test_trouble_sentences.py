"""Chain or database trouble reads as one sentence in every verify path, never a library's
exception text: the command line (`verify`, `verify-bundle`) and the API (by id, bundle).

Real faults: anvil stopped, an RPC address nothing listens on, a PostgreSQL cluster of the
test's own stopped in immediate mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain.anvil import AnvilNode
from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.verify import Verdict
from ledger.verify.service import chain_view_for, verify_bundle

from .conftest import REPO
from .scenario import Story
from .test_api import Server, auth
from .test_process_faults import ThrowawayPostgres, throwaway_postgres  # noqa: F401 - the fixture

# What a library's exception looks like when it leaks (requests, urllib3, psycopg, web3).
LEAKS = ("HTTPConnectionPool", "Max retries", "urllib3", "NewConnectionError", "Errno", "psycopg", "OperationalError")
MEANWHILE = "retry; the verdict is UNVERIFIABLE meanwhile"


def no_leak(text: str) -> None:
    leaked = [marker for marker in LEAKS if marker in text]
    assert not leaked, f"library exception text {leaked} in: {text}"


def texts(result: dict[str, Any]) -> str:
    return json.dumps(result)


@pytest.fixture
def exported(ledger_env: Ledger) -> dict[str, Any]:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    return {"ids": ids, "bundle": ledger_env.export_bundle(ids["shipment"])}


def test_a_stopped_chain_reads_as_a_sentence_in_the_store_verdict(
    ledger_env: Ledger, exported: dict[str, Any], anvil: AnvilNode
) -> None:
    rpc = anvil.rpc_url
    anvil.stop()
    time.sleep(0.3)  # the chain view reuses a head it read less than 0.25 s ago (by design)
    result = ledger_env.verify_shipment(exported["ids"]["shipment"])
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.CHAIN_UNAVAILABLE in result.codes
    shown = texts(result.to_json())
    no_leak(shown)
    assert f"the chain at {rpc} did not answer; {MEANWHILE}" in shown
    # Names cannot be vouched for without the chain: every party is "unknown", none named.
    assert all(p["name"] is None and "the chain could not be read" in p["shown"] for p in result.parties)


def test_a_dead_rpc_address_reads_as_a_sentence_in_a_bundle_verdict(
    ledger_env: Ledger, exported: dict[str, Any]
) -> None:
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    view = chain_view_for(dead, ledger_env.deployment.manifest, 1)
    result = verify_bundle(exported["bundle"], view, ledger_env.policy)
    assert result.verdict is Verdict.UNVERIFIABLE
    shown = texts(result.to_json())
    no_leak(shown)
    assert f"the chain at {dead} did not answer; {MEANWHILE}" in shown


def cli(home: Path, ledger: Ledger, *args: str, rpc: str | None = None) -> subprocess.CompletedProcess[str]:
    manifest = ledger.deployment.manifest.save(home / "deployment.json")
    env = {
        **os.environ,
        "PROVENANCE_HOME": str(home),
        "PROVENANCE_MANIFEST": str(manifest),
        "PROVENANCE_DATABASE_URL": ledger.settings.resolved_database_url,
        "PROVENANCE_RPC_URL": rpc or ledger.settings.resolved_rpc_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.long
def test_the_command_line_says_the_chain_did_not_answer_in_verify_and_verify_bundle(
    ledger_env: Ledger, exported: dict[str, Any], tmp_path: Path
) -> None:
    dead = "http://127.0.0.1:9"
    by_id = cli(tmp_path, ledger_env, "verify", exported["ids"]["shipment"], rpc=dead)
    assert by_id.returncode == 11, by_id.stderr
    no_leak(by_id.stdout + by_id.stderr)
    assert f"the chain at {dead} did not answer; {MEANWHILE}" in by_id.stdout
    assert "Traceback" not in by_id.stderr
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(exported["bundle"]))
    presented = cli(tmp_path, ledger_env, "verify-bundle", str(bundle), "--rpc-url", dead)
    assert presented.returncode == 11, presented.stderr
    no_leak(presented.stdout + presented.stderr)
    assert f"the chain at {dead} did not answer; {MEANWHILE}" in presented.stdout


def test_the_api_verdicts_say_the_chain_did_not_answer(
    ledger_env: Ledger, exported: dict[str, Any], anvil: AnvilNode
) -> None:
    server = Server(ledger_env)
    try:
        rpc = anvil.rpc_url
        anvil.stop()
        headers = auth(server.customs)
        by_id = server.http.post(f"/v1/shipments/{exported['ids']['shipment']}/verify", headers=headers)
        presented = server.http.post("/v1/bundles/verify", json=exported["bundle"], headers=headers)
    finally:
        server.stop()
    for answer in (by_id, presented):
        assert answer.status_code == 200 and answer.json()["verdict"] == "UNVERIFIABLE"
        no_leak(answer.text)
        assert f"the chain at {rpc} did not answer; {MEANWHILE}" in answer.text


@pytest.fixture
def stoppable_database(throwaway_postgres: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:  # noqa: F811
    yield throwaway_postgres


@pytest.mark.parametrize("database_url", ["throwaway-postgresql"], indirect=True)
def test_a_stopped_database_reads_as_a_sentence_in_the_api_and_the_command_line(
    stoppable_database: ThrowawayPostgres, ledger_env: Ledger, exported: dict[str, Any], tmp_path: Path
) -> None:
    server = Server(ledger_env)
    try:
        stoppable_database.stop("immediate")
        headers = auth(server.customs)
        by_id = server.http.post(f"/v1/shipments/{exported['ids']['shipment']}/verify", headers=headers)
        presented = server.http.post("/v1/bundles/verify", json=exported["bundle"], headers=headers)
    finally:
        server.stop()
    where = f"postgresql://postgres@127.0.0.1:{stoppable_database.port}/postgres"
    for answer in (by_id, presented):
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/problem+json")
        no_leak(answer.text)
        assert answer.json()["detail"] == f"the database at {where} did not answer; {MEANWHILE}"
    on_the_command_line = cli(tmp_path, ledger_env, "verify", exported["ids"]["shipment"])
    assert on_the_command_line.returncode == 2, on_the_command_line.stderr  # unavailable, not bad input
    no_leak(on_the_command_line.stdout + on_the_command_line.stderr)
    assert "Traceback" not in on_the_command_line.stderr
    assert f"the database at {where} did not answer; {MEANWHILE}" in on_the_command_line.stderr


def test_a_database_password_never_reaches_the_sentence() -> None:
    """An officer's screen, a log or a problem response is no place for the node's secret."""
    from ledger.trouble import store_trouble

    sentence = store_trouble("postgresql+psycopg://app:s3cret@db.internal:5432/ledger")
    assert sentence == f"the database at postgresql://app@db.internal:5432/ledger did not answer; {MEANWHILE}"
    written = store_trouble("postgresql://app:s3cret@db.internal/ledger", verifying=False)
    assert "s3cret" not in written and "nothing was stored" in written
