"""Evidence that cannot be trimmed, and several customs administrations on one chain.

Every verifying node holds the complete public ledger, mirrored from peers it does not
trust and checked against the on-chain batch roots. Node A and node B below each have
their own database and anchoring account, one anvil chain between them, and talk only
through each other's HTTP API (real servers on loopback).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self, cast

import pytest
from sqlalchemy import text
from web3 import Web3

from ledger.chain.accounts import dev_account, write_keystore
from ledger.chain.client import call_and_send
from ledger.chain.deploy import FOREVER
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.mirror import mirror
from ledger.peers import HttpPeer, Peer
from ledger.reasons import Reason
from ledger.roles import Role
from ledger.store.db import scratch_postgres_database
from ledger.verify import CheckStatus, Verdict

from .conftest import POSTGRES_ADMIN_URL, ReliabilityRecorder
from .scenario import Story
from .test_api import Server


@pytest.fixture
def second_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Node B's own database, of the same kind as node A's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'node-b.db'}"
        return
    with scratch_postgres_database("pl_test_b_", POSTGRES_ADMIN_URL) as url:
        yield url


@pytest.fixture
def node_a(ledger_env: Ledger) -> Iterator[tuple[Ledger, Server]]:
    """Node A: the shared fixture's ledger, measuring completeness on every verification."""
    node = Ledger.open(ledger_env.settings.replace(completeness_interval=0.0), manifest=ledger_env.deployment.manifest)
    server = Server(node)
    yield node, server
    server.stop()
    node.close()


@pytest.fixture
def node_b(ledger_env: Ledger, second_database_url: str, tmp_path: Path) -> Iterator[tuple[Ledger, Server]]:
    """Node B: its own database, data key and anchoring account (dev key 9, accredited as
    an anchorer by the registrar), on the same chain and ledger contract."""
    anchorer = dev_account(9)
    w3 = ledger_env.deployment.w3
    call_and_send(
        w3,
        dev_account(0),
        ledger_env.deployment.registry.functions.admit(
            anchorer.address, Web3.keccak(text="node-b"), int(Role.ANCHORER), 0, FOREVER
        ),
    )
    keystore = write_keystore(anchorer, tmp_path / "node-b" / "anchorer.json", "node-b-secret", kdf_iterations=2)
    settings = ledger_env.settings.replace(
        home=tmp_path / "node-b",
        database_url=second_database_url,
        anchor_keystore=keystore,
        key_password="node-b-secret",
        completeness_interval=0.0,
    )
    node = Ledger.open(settings, manifest=ledger_env.deployment.manifest)
    server = Server(node)
    yield node, server
    server.stop()
    node.close()


def peer(server: Server) -> HttpPeer:
    return HttpPeer(f"http://127.0.0.1:{server.port}")


def anchor(node: Ledger) -> None:
    Story(node).anchor()


def watched_shipment(ledger: Ledger) -> tuple[str, str]:
    """(watch-list entry, shipment): a shipment of goods class 8413 that the anchored entry
    flags (WATCHLIST_HIT and nothing else)."""
    story = Story(ledger)
    watch = story.watch(["8413"])
    made = story.produce([])
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    anchor(ledger)
    assert ledger.verify_shipment(shipment).codes == {Reason.WATCHLIST_HIT}
    return watch, shipment


# ---------------------------------------------------------- trimmed bundles


def test_a_node_with_a_complete_copy_flags_a_bundle_trimmed_of_the_sibling_shipment(
    node_a: tuple[Ledger, Server], reliability: ReliabilityRecorder
) -> None:
    """The exporter ships the same 500 twice and presents the second shipment's bundle:
    the sibling that drained the lot is not the exporter's to show, but the node holds it."""
    ledger, _server = node_a
    story = Story(ledger)
    made = story.produce([story.licence([story.asset()])], quantity=500)
    moved = story.transfer([made], "maker", "exporter", 500)
    first = story.ship([moved], 500)
    second = story.ship([moved], 500, destination="DE")
    anchor(ledger)
    full = ledger.verify_shipment(second)
    assert full.verdict is Verdict.FLAGGED and Reason.CUSTODY_FORK in full.codes
    bundle = ledger.export_bundle(second)
    shown = {e["uid"] for e in bundle["attestations"]}
    assert {second, moved, made} <= shown and first not in shown  # the sibling is not the exporter's to show
    at_node = ledger.verify_bundle(bundle)
    assert (at_node.verdict, at_node.codes) == (full.verdict, full.codes), at_node.to_json()
    assert at_node.to_json()["completeness"]["complete"] is True
    reliability.record("input", "bundle without the sibling shipment that drained the lot", 1, "FLAGGED at a node")


def test_bundles_carry_no_confidential_value_and_no_other_partys_records(node_a: tuple[Ledger, Server]) -> None:
    ledger, _server = node_a
    story = Story(ledger)
    secret_note = "rights holder's confidential enforcement note 7f3a"
    story.sign(
        "rights_holder", Kind.WATCHLIST, {"goodsClasses": ["8413"], "note": secret_note}, "watch", confidential=["note"]
    )
    ids = story.clean_export()
    story.sign(
        "maker",
        Kind.PRODUCTION,
        {"lot": "SECRET", "quantity": 5, "unit": "pcs", "goodsClass": "841370", "formula": "trade secret 42"},
        "lot:SECRET",
        confidential=["formula"],
    )
    anchor(ledger)
    text_of_bundle = str(ledger.export_bundle(ids["shipment"]))
    assert secret_note not in text_of_bundle and "trade secret 42" not in text_of_bundle
    kinds = {e["typedData"]["primaryType"] for e in ledger.export_bundle(ids["shipment"])["attestations"]}
    assert "WatchlistEntry" not in kinds and "CustomsFinding" not in kinds
    assert ledger.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED


def test_deleting_an_anchored_watch_list_row_lowers_the_watermark_and_blocks_verified(
    node_a: tuple[Ledger, Server],
) -> None:
    """The node's own database administrator deletes the watch-list entry that flags a
    shipment: the batch no longer holds what the chain anchors."""
    ledger, _server = node_a
    watch, shipment = watched_shipment(ledger)
    with ledger.engine.begin() as conn:
        batch = conn.execute(
            text("SELECT b.chain_index FROM batches b JOIN attestations a ON a.batch_id = b.id WHERE a.uid = :u"),
            {"u": watch},
        ).scalar_one()
        conn.execute(text("DELETE FROM watchlist_classes WHERE uid = :u"), {"u": watch})
        conn.execute(text("DELETE FROM attestations WHERE uid = :u"), {"u": watch})
    Story(ledger).anchor()  # a new block: the earlier verdict is not reused
    result = ledger.verify_shipment(shipment)
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.EVIDENCE_INCOMPLETE in result.codes, result.to_json()
    assert batch in result.to_json()["completeness"]["gaps"]


# ---------------------------------------------------------------- federation


def test_a_shipment_declared_at_one_border_verifies_at_another_and_findings_travel_back(
    node_a: tuple[Ledger, Server], node_b: tuple[Ledger, Server]
) -> None:
    a, a_server = node_a
    b, b_server = node_b
    story = Story(a)
    ids = story.clean_export()
    anchor(a)
    report = mirror(b, [peer(a_server)])
    assert report.gaps == [] and report.problems == [] and report.records_stored >= 10
    at_a, at_b = a.verify_shipment(ids["shipment"]), b.verify_shipment(ids["shipment"])
    assert (at_b.verdict, at_b.codes) == (at_a.verdict, at_a.codes) == (Verdict.VERIFIED, set()), at_b.to_json()
    # Customs at B records a finding on the lot; B anchors it with its own account.
    Story(b).finding(ids["to_carrier"], "COUNTERFEIT_SUSPECTED")
    anchor(b)
    assert mirror(a, [peer(b_server)]).gaps == []
    later = a.verify_shipment(ids["shipment"])
    assert later.verdict is Verdict.FLAGGED and later.codes == {Reason.PRIOR_FINDING}, later.to_json()
    assert mirror(b, [peer(a_server)]).records_stored == 0  # a second pass (a restart) has nothing to do


class Relay:
    """A hostile relay in front of a real peer: it answers what the peer answers, except
    that a subclass rewrites each batch document (`edit`, given a copy); direct records
    pass unchanged. The mirror's forked workers get the same relay over their own
    connection."""

    label = "relay"

    def __init__(self, inner: Peer) -> None:
        self.inner, self.name = inner, f"{self.label} {inner.name}"

    def batch(self, index: int, records: int) -> object:
        return self.edit(copy.deepcopy(cast("dict[str, Any]", self.inner.batch(index, records))))

    def edit(self, document: dict[str, Any]) -> object:
        return document

    def direct(self, uid: str) -> object:
        return self.inner.direct(uid)

    def for_worker(self) -> Self:
        return type(self)(self.inner.for_worker())


class WithholdingPeer(Relay):
    """A relay that drops the last record of every batch."""

    label = "withholding"

    def edit(self, document: dict[str, Any]) -> object:
        return {**document, "records": document["records"][:-1]}


class ForgingPeer(Relay):
    """A relay that raises every production's quantity."""

    label = "forging"

    def edit(self, document: dict[str, Any]) -> object:
        for record in document["records"]:
            fields = record[-1]  # the disclosed fields: {name: {value, salt}}
            if "quantity" in fields:
                fields["quantity"]["value"] = 10**6
        return document


def test_a_peer_withholding_or_forging_records_is_named_and_another_peer_fills_the_gap(
    node_a: tuple[Ledger, Server], node_b: tuple[Ledger, Server], reliability: ReliabilityRecorder
) -> None:
    a, a_server = node_a
    b, _b_server = node_b
    ids = Story(a).clean_export()
    anchor(a)
    honest = peer(a_server)
    report = mirror(b, [WithholdingPeer(honest), ForgingPeer(honest)])
    assert report.gaps and report.records_stored == 0
    assert {p.what for p in report.problems} == {"WITHHELD", "FORGED"}
    bundle = a.export_bundle(ids["shipment"])
    incomplete = b.verify_bundle(bundle)
    assert incomplete.verdict is Verdict.UNVERIFIABLE and Reason.EVIDENCE_INCOMPLETE in incomplete.codes
    assert next(c for c in incomplete.checks if c.name == "completeness").status is CheckStatus.INVALID
    filled = mirror(b, [WithholdingPeer(honest), honest])
    assert filled.gaps == [] and filled.records_stored > 0
    assert b.verify_bundle(bundle).verdict is Verdict.VERIFIED
    reliability.record(
        "input",
        "peers withholding a record / forging a quantity (relays over a real peer)",
        2,
        "both named and nothing stored; UNVERIFIABLE with the gap; an honest peer then fills it",
    )
