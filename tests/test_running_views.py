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
