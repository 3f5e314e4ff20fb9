"""The node's running views — per-licence productions, per-batch member counts — read only
what is new on each call, and still never let a database edit turn a verdict VERIFIED.

Stories (real anvil, SQLite and PostgreSQL): a licence read for the first time after the
node's cursor has passed its productions still counts them; a production under a licence
already kept counts when it arrives; the completeness counts, once kept, still drop when
the database administrator deletes an anchored row or a whole batch row, and a new batch
is counted when it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.verify import Verdict

from .scenario import Story


def export(story: Story, lot: str, cap: int = 10_000) -> dict[str, str]:
    """A licence of its own (cap `cap`), 1000 made under it, handed to the exporter, shipped."""
    ids: dict[str, str] = {}
    ids["asset"] = story.asset()
    ids["licence"] = story.licence([ids["asset"]], quantityCap=cap)
    ids["made"] = story.produce([ids["licence"]], quantity=1000, lot=lot)
    ids["to_exporter"] = story.transfer([ids["made"]], "maker", "exporter", 1000, lot=lot)
    ids["shipment"] = story.ship([ids["to_exporter"]], 1000)
    return ids


@pytest.fixture
def node(ledger_env: Ledger) -> Iterator[Ledger]:
    """The shared ledger, measuring completeness on every verification."""
    settings = ledger_env.settings.replace(completeness_interval=0.0)
    ledger = Ledger.open(settings, manifest=ledger_env.deployment.manifest)
    yield ledger
    ledger.close()


def test_a_licence_first_read_after_the_cursor_passed_its_productions_counts_them(node: Ledger) -> None:
    """The node reads productions stored since its last call for the licences it keeps.
    Productions under a licence it does not keep yet are passed by that cursor; when the
    licence is first needed, they are read with it, so an exceeded cap is still seen."""
    story = Story(node)
    first = export(story, "LOT-A")
    second = export(story, "LOT-B", cap=1500)
    story.anchor()
    assert node.verify_shipment(first["shipment"]).verdict is Verdict.VERIFIED  # keeps licence A only
    story.produce([second["licence"]], quantity=1000, lot="LOT-B2")  # B: 2000 made under a cap of 1500
    story.anchor()
    assert node.verify_shipment(first["shipment"]).verdict is Verdict.VERIFIED  # the cursor passes it
    result = node.verify_shipment(second["shipment"])
    assert result.verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in result.codes, result.to_json()


def test_a_production_under_a_kept_licence_counts_when_it_arrives(node: Ledger) -> None:
    story = Story(node)
    ids = export(story, "LOT-A", cap=1500)
    story.anchor()
    assert node.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED
    story.produce([ids["licence"]], quantity=600, lot="LOT-A2")
    story.anchor()
    result = node.verify_shipment(ids["shipment"])
    assert result.verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in result.codes, result.to_json()


def test_kept_batch_counts_still_drop_when_an_anchored_row_is_deleted(node: Ledger) -> None:
    """The administrator deletes an anchored record that flags nothing in particular, in
    an early batch, after the node has counted every batch: the sum no longer adds up,
    every batch is counted again, and the batch is named as a gap."""
    story = Story(node)
    bystander = story.finding(story.asset(), "INSPECTED_OK")
    story.anchor()
    ids = export(story, "LOT-A")
    story.anchor()
    first = node.verify_shipment(ids["shipment"])
    assert first.verdict is Verdict.VERIFIED and first.to_json()["completeness"]["complete"] is True
    with node.engine.begin() as conn:
        batch = conn.execute(
            text("SELECT b.chain_index FROM batches b JOIN attestations a ON a.batch_id = b.id WHERE a.uid = :u"),
            {"u": bystander},
        ).scalar_one()
        conn.execute(text("DELETE FROM attestation_refs WHERE uid = :u"), {"u": bystander})
        conn.execute(text("DELETE FROM attestations WHERE uid = :u"), {"u": bystander})
    story.anchor()  # a new block, so the earlier verdict is not reused
    result = node.verify_shipment(ids["shipment"])
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.EVIDENCE_INCOMPLETE in result.codes, result.to_json()
    assert batch in result.to_json()["completeness"]["gaps"]


def test_kept_batch_counts_see_a_new_batch_and_a_deleted_batch_row(node: Ledger) -> None:
    story = Story(node)
    ids = export(story, "LOT-A")
    story.anchor()
    assert node.verify_shipment(ids["shipment"]).to_json()["completeness"]["complete"] is True
    later = export(story, "LOT-B")
    story.anchor()  # a new batch, counted when first seen
    again = node.verify_shipment(later["shipment"])
    assert again.verdict is Verdict.VERIFIED and again.to_json()["completeness"]["complete"] is True, again.to_json()
    with node.engine.begin() as conn:
        batch_id, index = conn.execute(
            text("SELECT b.id, b.chain_index FROM batches b JOIN attestations a ON a.batch_id = b.id WHERE a.uid = :u"),
            {"u": ids["shipment"]},
        ).one()
        conn.execute(text("DELETE FROM batch_trees WHERE batch_id = :b"), {"b": batch_id})
        conn.execute(text("UPDATE attestations SET batch_id = NULL WHERE batch_id = :b"), {"b": batch_id})
        conn.execute(text("DELETE FROM batches WHERE id = :b"), {"b": batch_id})
    story.anchor()
    result = node.verify_shipment(later["shipment"])
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.EVIDENCE_INCOMPLETE in result.codes, result.to_json()
    assert index in result.to_json()["completeness"]["gaps"]


def _edit_quantity(node: Ledger, uid: str, quantity: int) -> None:
    """The database administrator lowers a stored production's disclosed quantity."""
    import json

    with node.engine.begin() as conn:
        disclosed = json.loads(
            conn.execute(text("SELECT disclosed FROM attestations WHERE uid = :u"), {"u": uid}).scalar_one()
        )
        disclosed["quantity"]["value"] = quantity
        conn.execute(
            text("UPDATE attestations SET disclosed = :d WHERE uid = :u"), {"d": json.dumps(disclosed), "u": uid}
        )


def test_a_node_warmed_up_at_start_gives_the_verdicts_a_cold_node_gives(node: Ledger) -> None:
    """The warm-up reads and checks every licence's productions and measures completeness
    before any verification: the verdicts are those of a node that did not warm up, an
    exceeded cap and a production edited in the database included, and a production
    that arrives afterwards under a licence it read still counts."""
    story = Story(node)
    clean = export(story, "LOT-A", cap=1500)
    exceeded = export(story, "LOT-B", cap=1500)
    story.produce([exceeded["licence"]], quantity=1000, lot="LOT-B2")  # 2000 made under 1500
    edited = export(story, "LOT-C", cap=1500)
    hidden = story.produce([edited["licence"]], quantity=1000, lot="LOT-C2")
    story.anchor()
    _edit_quantity(node, hidden, 1)  # would bring LOT-C's licence back under its cap
    shipments = [clean["shipment"], exceeded["shipment"], edited["shipment"]]
    cold = [node.verify_shipment(s) for s in shipments]
    warm = Ledger.open(node.settings, manifest=node.deployment.manifest)
    try:
        took = warm.warm_up()
        assert set(took) == {"chain", "completeness", "anchors", "licences", "rest"}
        assert all(warm.licence_outputs._seen.get(ids["licence"]) for ids in (clean, exceeded, edited))
        verdicts = [warm.verify_shipment(s) for s in shipments]
        assert [(r.verdict, sorted(r.codes)) for r in verdicts] == [(r.verdict, sorted(r.codes)) for r in cold]
        assert verdicts[0].verdict is Verdict.VERIFIED
        assert verdicts[1].verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in verdicts[1].codes
        assert verdicts[2].verdict is Verdict.UNVERIFIABLE and Reason.STORE_CORRUPTED in verdicts[2].codes
        story.produce([clean["licence"]], quantity=600, lot="LOT-A2")  # A: 1600 made under 1500
        story.anchor()
        late = warm.verify_shipment(clean["shipment"])
        assert late.verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in late.codes, late.to_json()
    finally:
        warm.close()


def test_a_licence_whose_first_read_failed_is_read_again_not_kept_empty(
    node: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error while a licence's productions are first read makes that
    verification's licensing check an error (never VERIFIED); the licence is not kept as
    one with no productions, so the next verification reads it and sees the cap exceeded."""
    from sqlalchemy.exc import OperationalError

    story = Story(node)
    ids = export(story, "LOT-A", cap=1500)
    story.produce([ids["licence"]], quantity=1000, lot="LOT-A2")
    story.anchor()
    outputs = node.licence_outputs
    real = outputs._read_children
    failures: list[str] = []

    def fail_once(*args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append("failed")
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        real(*args, **kwargs)

    monkeypatch.setattr(outputs, "_read_children", fail_once)
    first = node.verify_shipment(ids["shipment"])
    assert failures and first.verdict is Verdict.UNVERIFIABLE, first.to_json()
    again = node.verify_shipment(ids["shipment"])
    assert again.verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in again.codes, again.to_json()


def test_the_keeper_measures_completeness_before_a_verification_would(ledger_env: Ledger) -> None:
    """With a reuse interval, `keep_warm` measures the watermark again in the background
    (at half the interval), and verifications use that measurement."""
    import threading

    story = Story(ledger_env)
    ids = export(story, "LOT-A")
    story.anchor()
    node = Ledger.open(ledger_env.settings.replace(completeness_interval=2.0), manifest=ledger_env.deployment.manifest)
    stop = threading.Event()
    try:
        first = node.verify_shipment(ids["shipment"]).to_json()["completeness"]["measuredAt"]
        keeper = threading.Thread(target=node.keep_warm, args=(stop,), daemon=True)
        keeper.start()
        for _ in range(200):  # until the keeper has measured again (it does every second)
            if node.completeness.watermark(node.chain_view.snapshot()).measured_at > first:
                break
            stop.wait(0.1)
        kept = node.completeness.watermark(node.chain_view.snapshot())
        assert kept.measured_at > first and kept.complete
        story.anchor()  # a new block: the verdict is not reused, the keeper's measurement is
        result = node.verify_shipment(ids["shipment"]).to_json()["completeness"]
        assert result["measuredAt"] >= kept.measured_at and result["complete"] is True
    finally:
        stop.set()
        node.close()
