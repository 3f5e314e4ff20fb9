"""A verifying process reuses what it parsed and checked of a stored record only while the
row reads exactly the same: a database administrator who edits a row after a verification
checked it gets the same verdict as in a fresh process (`ledger/verify/evidence.py`,
`_parse_row`; `ledger/verify/checks/integrity.py`, `_PASSED`), and a proof other than
the one proven is proven afresh (`ledger/verify/checks/anchoring.py`, `_PROVEN`)."""

from __future__ import annotations

import json

from sqlalchemy import text

from ledger.core import Ledger
from ledger.hashing import parse_hex
from ledger.merkle import leaf_position
from ledger.reasons import Reason
from ledger.verify import Verdict, VerificationPolicy
from ledger.verify.service import chain_view_for, verify_bundle, verify_in_store

from .scenario import Story


def _verified(ledger: Ledger, shipment: str) -> None:
    result = verify_in_store(ledger, shipment, ledger.policy)
    assert result.verdict is Verdict.VERIFIED, result.to_json()


def test_a_licence_row_edited_after_it_was_checked_is_checked_again(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    _verified(ledger_env, ids["shipment"])  # the licence is now parsed and checked in this process
    with ledger_env.engine.begin() as conn:
        kept = conn.execute(
            text("SELECT disclosed FROM attestations WHERE uid = :u"), {"u": ids["licence"]}
        ).scalar_one()
        fields = json.loads(kept)
        fields["quantityCap"]["value"] = 10**9  # a wider cap than the one signed
        conn.execute(
            text("UPDATE attestations SET disclosed = :d WHERE uid = :u"),
            {"d": json.dumps(fields), "u": ids["licence"]},
        )
    edited = verify_in_store(ledger_env, ids["shipment"], ledger_env.policy)
    assert edited.verdict is Verdict.UNVERIFIABLE and Reason.PAYLOAD_MISMATCH in edited.codes, edited.to_json()
    with ledger_env.engine.begin() as conn:
        conn.execute(text("UPDATE attestations SET disclosed = :d WHERE uid = :u"), {"d": kept, "u": ids["licence"]})
    _verified(ledger_env, ids["shipment"])  # the row as signed again: checked again, and it passes


def test_a_reference_row_deleted_after_its_record_was_checked_is_seen_in_the_same_process(
    ledger_env: Ledger,
) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    _verified(ledger_env, ids["shipment"])
    with ledger_env.engine.begin() as conn:
        conn.execute(text("DELETE FROM attestation_refs WHERE uid = :u"), {"u": ids["licence"]})
    edited = verify_in_store(ledger_env, ids["shipment"], ledger_env.policy)
    assert edited.verdict is Verdict.UNVERIFIABLE and Reason.UID_MISMATCH in edited.codes, edited.to_json()


def test_a_proof_changed_after_the_same_record_was_proven_is_not_anchored(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    _verified(ledger_env, ids["shipment"])  # every record's inclusion proof now checked in this process
    bundle = ledger_env.export_bundle(ids["shipment"])
    chain = chain_view_for(ledger_env.settings.resolved_rpc_url, ledger_env.deployment.manifest, 1)
    entry = next(e for e in bundle["attestations"] if e["uid"] == ids["shipment"])
    proof = entry["anchor"]["proof"]
    last = proof[-1]
    proof[-1] = last[:-1] + ("0" if last[-1] != "0" else "1")  # the sibling next to the root
    result = verify_bundle(bundle, chain, VerificationPolicy(confirmations=1))
    assert Reason.NOT_ANCHORED in result.codes and result.verdict is Verdict.UNVERIFIABLE, result.to_json()


def test_a_kept_tree_edited_after_the_same_tree_was_checked_is_checked_afresh(ledger_env: Ledger) -> None:
    """A process proves leaves from a batch's kept tree once the whole tree hashes up to the
    root the chain holds. The database administrator then changes the node next to the
    shipment's leaf (the root left as it was), and the node restarts: the edited tree is
    other bytes, checked afresh, and the shipment's path through it leads nowhere."""
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    _verified(ledger_env, ids["shipment"])  # the batch's kept tree now checked in this process
    with ledger_env.engine.begin() as conn:
        batch = conn.execute(
            text("SELECT batch_id FROM attestations WHERE uid = :u"), {"u": ids["shipment"]}
        ).scalar_one()
        kept = text("SELECT nodes FROM batch_trees WHERE batch_id = :b")
        nodes = bytes(conn.execute(kept, {"b": batch}).scalar_one())
        leaf = leaf_position(nodes, parse_hex(ids["shipment"], 32, "uid"))
        sibling = leaf - 1 if leaf % 2 == 0 else leaf + 1
        edited = bytearray(nodes)
        # Its last bit: a sibling leaf stays in its sorted place, so the shipment's leaf is
        # still found (its first byte could move it past the shipment's leaf).
        edited[sibling * 32 + 31] ^= 0x01
        conn.execute(text("UPDATE batch_trees SET nodes = :n WHERE batch_id = :b"), {"n": bytes(edited), "b": batch})
    restarted = Ledger.open(ledger_env.settings, manifest=ledger_env.deployment.manifest)
    try:
        result = verify_in_store(restarted, ids["shipment"], restarted.policy)
    finally:
        restarted.close()
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.NOT_ANCHORED in result.codes, result.to_json()
    assert any(f.code is Reason.NOT_ANCHORED and ids["shipment"] in f.uids for c in result.checks for f in c.findings)
