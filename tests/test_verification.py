"""Customs verification, told as stories: each ends in one verdict with precise reasons."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger.chain.accounts import dev_account
from ledger.chain.anvil import AnvilNode
from ledger.chain.client import call_and_send
from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.verify import CheckStatus, Verdict, VerificationPolicy
from ledger.verify.model import VerificationResult
from ledger.verify.service import chain_view_for, verify_bundle

from .conftest import ReliabilityRecorder
from .scenario import Story, actor


# Any: keyword arguments of VerificationPolicy, whose fields have several types.
def verdict_of(ledger: Ledger, uid: str, **policy: Any) -> tuple[Verdict, set[Reason], VerificationResult]:
    result = ledger.verify_shipment(uid, VerificationPolicy(**policy) if policy else None)
    return result.verdict, result.codes, result


def test_a_repeated_verification_is_reused_until_the_chain_or_the_store_changes(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    first = ledger_env.verify_shipment(ids["shipment"])
    assert ledger_env.verify_shipment(ids["shipment"]) is first  # nothing changed: the same verdict
    story.finding(ids["to_carrier"], "COUNTERFEIT_SUSPECTED")  # a new record in the store
    after = ledger_env.verify_shipment(ids["shipment"])
    assert after is not first and after.verdict is Verdict.FLAGGED


def test_a_clean_multi_hop_licensed_shipment_is_verified(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    verdict, codes, result = verdict_of(ledger_env, ids["shipment"])
    assert (verdict, codes) == (Verdict.VERIFIED, set()), result.to_json()
    assert all(c.status is CheckStatus.VALID for c in result.checks)
    assert [c.name for c in result.checks] == [
        "integrity",
        "identity",
        "anchoring",
        "status",
        "custody",
        "licensing",
        "watchlist",
        "prior_findings",
        "completeness",
    ]
    assert any(f.name == "NEW_EXPORTER" for f in result.risk_factors) and result.risk_score == 10


def test_a_carrier_handing_over_goods_it_never_held_is_a_custody_gap(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    story = Story(ledger_env)
    asset = story.asset()
    made = story.produce([story.licence([asset])])
    to_carrier = story.transfer([made], "maker", "carrier", 1000)
    # The importer (never given the goods) hands them to the exporter.
    stolen = story.transfer([to_carrier], "importer", "exporter", 1000)
    shipment = story.ship([stolen], 1000)
    story.anchor()
    verdict, codes, _ = verdict_of(ledger_env, shipment)
    assert (verdict, codes) == (Verdict.FLAGGED, {Reason.CUSTODY_GAP})
    reliability.record("input", "hand-over of goods never held", 1, "FLAGGED, CUSTODY_GAP only")


def test_a_lot_shipped_twice_is_a_fork(ledger_env: Ledger, reliability: ReliabilityRecorder) -> None:
    story = Story(ledger_env)
    made = story.produce([story.licence([story.asset()])], quantity=500)
    to_exporter = story.transfer([made], "maker", "exporter", 500)
    first = story.ship([to_exporter], 500)
    second = story.ship([to_exporter], 500, destination="DE")
    story.anchor()
    for shipment in (first, second):
        verdict, codes, _ = verdict_of(ledger_env, shipment)
        assert (verdict, codes) == (Verdict.FLAGGED, {Reason.CUSTODY_FORK})
    reliability.record("input", "a lot shipped twice", 2, "both shipments FLAGGED, CUSTODY_FORK only")


def test_shipping_more_than_was_produced_exceeds_the_quantity(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    story = Story(ledger_env)
    made = story.produce([story.licence([story.asset()])], quantity=100)
    moved = story.transfer([made], "maker", "exporter", 100)
    shipment = story.ship([moved], 250)
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.QUANTITY_EXCEEDED})
    reliability.record("input", "quantities that do not add up (ship 250 of 100)", 1, "FLAGGED, QUANTITY_EXCEEDED only")


def test_a_hand_over_dated_before_the_production_is_time_inconsistent(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    story = Story(ledger_env)
    story.t += 20  # leave room to backdate a step without predating the participants' admission
    made = story.produce([story.licence([story.asset()])])
    moved = story.transfer([made], "maker", "exporter", 1000, at=story.t - 5)
    shipment = story.ship([moved], 1000)
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.TIME_INCONSISTENT})
    reliability.record("input", "hand-over dated before the production", 1, "FLAGGED, TIME_INCONSISTENT only")


@pytest.mark.parametrize(
    "terms, destination, goods, code",
    [
        ({"territories": ["DE"]}, "FR", "841370", Reason.LICENCE_TERRITORY),
        ({"goodsClasses": ["8501"]}, "FR", "841370", Reason.LICENCE_GOODS),
        ({"validUntil": 1000}, "FR", "841370", Reason.LICENCE_EXPIRED),
        ({"quantityCap": 10}, "FR", "841370", Reason.LICENCE_QUANTITY),
    ],
)
def test_a_licence_that_does_not_cover_the_shipment_is_flagged(
    ledger_env: Ledger, terms: dict[str, Any], destination: str, goods: str, code: Reason
) -> None:
    story = Story(ledger_env)
    made = story.produce([story.licence([story.asset()], **terms)], goods=goods)
    shipment = story.ship(
        [story.transfer([made], "maker", "exporter", 1000)], 1000, destination=destination, goods=goods
    )
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {code})


def test_a_licence_revoked_before_production_is_flagged(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    licence = story.licence([story.asset()])
    story.revoke(licence, "rights_holder")
    made = story.produce([licence])
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.LICENCE_REVOKED})


def test_a_sub_licence_the_parent_does_not_permit_is_no_licence(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    asset = story.asset()
    parent = story.licence([asset], licensee="maker", sublicensing=False)
    # The maker sub-licenses to the importer, which produces.
    sub = story.licence([parent], licensee="importer", who="maker")
    ledger = ledger_env
    registry, w3 = ledger.deployment.registry, ledger.deployment.w3
    call_and_send(w3, dev_account(0), registry.functions.grantRoles(actor("importer").address, 4))  # MANUFACTURER
    time.sleep(1.1)
    story.t = max(story.t, ledger.deployment.now())
    made = story.produce([sub], who="importer")
    moved = story.transfer([made], "importer", "exporter", 1000)
    shipment = story.ship([moved], 1000)
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.LICENCE_MISSING})


def test_watch_listed_goods_without_a_licence_chain_are_a_watchlist_hit(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    story.watch(["8413"])
    made = story.produce([])  # no licence at all
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.WATCHLIST_HIT})


def test_a_revoked_hand_over_is_flagged_revoked(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    made = story.produce([story.licence([story.asset()])])
    moved = story.transfer([made], "maker", "exporter", 1000)
    story.revoke(moved, "maker")
    shipment = story.ship([moved], 1000)
    story.anchor()
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.REVOKED})


def test_an_expired_hand_over_is_flagged_expired(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    made = story.produce([story.licence([story.asset()])])
    expires = story.t + 4
    moved = story.transfer([made], "maker", "exporter", 1000, expires_at=expires)
    shipment = story.ship([moved], 1000)
    story.anchor()
    while time.time() <= expires:
        time.sleep(0.2)
    assert verdict_of(ledger_env, shipment)[:2] == (Verdict.FLAGGED, {Reason.EXPIRED})


def test_an_earlier_customs_finding_is_reported(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.finding(ids["to_carrier"], "COUNTERFEIT_SUSPECTED")
    story.anchor()
    assert verdict_of(ledger_env, ids["shipment"])[:2] == (Verdict.FLAGGED, {Reason.PRIOR_FINDING})


def test_before_anchoring_a_shipment_is_unverifiable_not_anchored(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    assert verdict_of(ledger_env, ids["shipment"])[:2] == (Verdict.UNVERIFIABLE, {Reason.NOT_ANCHORED})


def test_an_anchor_without_enough_confirmations_is_unconfirmed(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    assert verdict_of(ledger_env, ids["shipment"], confirmations=50)[:2] == (
        Verdict.UNVERIFIABLE,
        {Reason.ANCHOR_UNCONFIRMED},
    )


def test_with_the_chain_unreachable_the_verdict_is_unverifiable_never_verified(
    anvil: AnvilNode, ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    assert verdict_of(ledger_env, ids["shipment"])[0] is Verdict.VERIFIED  # with the node up
    anvil.stop()  # the node itself goes away
    time.sleep(0.3)  # past the 250 ms for which a chain head is reused
    verdict, codes, result = verdict_of(ledger_env, ids["shipment"])
    assert verdict is Verdict.UNVERIFIABLE and Reason.CHAIN_UNAVAILABLE in codes
    assert any(c.status is CheckStatus.ERROR for c in result.checks)
    reliability.record(
        "fault",
        "chain node stopped during verification",
        1,
        "VERIFIED while up; UNVERIFIABLE with CHAIN_UNAVAILABLE once stopped, never VERIFIED",
        kind="chain outage",
    )


def test_a_policy_that_requires_acceptance_flags_an_unaccepted_hand_over(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    made = story.produce([story.licence([story.asset()])])
    moved = story.transfer([made], "maker", "exporter", 1000)  # never accepted
    shipment = story.ship([moved], 1000)
    story.anchor()
    assert verdict_of(ledger_env, shipment, require_acceptance=True)[:2] == (Verdict.FLAGGED, {Reason.CUSTODY_GAP})
    assert verdict_of(ledger_env, shipment)[0] is Verdict.VERIFIED


def test_an_empty_mandatory_policy_never_verifies(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    assert verdict_of(ledger_env, ids["shipment"], mandatory=frozenset())[0] is Verdict.UNVERIFIABLE


# ------------------------------------------------------------------- bundles
# Bundles and their entries are JSON documents (dict[str, Any]).


def exported(ledger: Ledger) -> tuple[dict[str, Any], dict[str, str]]:
    story = Story(ledger)
    ids = story.clean_export()
    story.anchor()
    return ledger.export_bundle(ids["shipment"]), ids


def bundle_verdict(
    ledger: Ledger, bundle: dict[str, Any], *, alone: bool = False
) -> tuple[Verdict, set[Reason], VerificationResult]:
    """A bundle verified at the node (completed from its copy of the ledger), or `alone`
    with only a fresh chain view (the command line without --mirror)."""
    if alone:
        chain = chain_view_for(ledger.settings.resolved_rpc_url, ledger.deployment.manifest, 1)
        result = verify_bundle(bundle, chain, VerificationPolicy(confirmations=1))
    else:
        result = ledger.verify_bundle(bundle)
    return result.verdict, result.codes, result


def test_an_exported_bundle_verifies_at_a_node_with_the_same_verdict_but_never_alone(ledger_env: Ledger) -> None:
    bundle, ids = exported(ledger_env)
    verdict, codes, result = bundle_verdict(ledger_env, bundle)
    service = ledger_env.verify_shipment(ids["shipment"])
    assert (verdict, codes) == (service.verdict, service.codes) == (Verdict.VERIFIED, set()), result.to_json()
    # With only the bundle and the chain nobody can say the evidence is complete.
    verdict, codes, alone = bundle_verdict(ledger_env, bundle, alone=True)
    assert (verdict, codes) == (Verdict.UNVERIFIABLE, set())
    assert [c.name for c in alone.checks if c.status is not CheckStatus.VALID] == ["completeness"]
    assert next(c for c in alone.checks if c.name == "completeness").status is CheckStatus.SKIPPED


def test_re_verifying_an_old_bundle_reflects_a_later_revocation(ledger_env: Ledger) -> None:
    bundle, ids = exported(ledger_env)
    # The maker revokes its hand-over later; the worker records the revocation directly on
    # chain, where any verifier holding only the old bundle and the chain sees it.
    story = Story(ledger_env)
    story.revoke(ids["to_carrier"], "maker")
    time.sleep(1.1)
    story.anchor()
    verdict, codes, _ = bundle_verdict(ledger_env, bundle)
    assert (verdict, codes) == (Verdict.FLAGGED, {Reason.REVOKED})
    assert bundle_verdict(ledger_env, bundle, alone=True)[1] == {Reason.REVOKED}  # seen on chain alone too


def _entry(bundle: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(e for e in bundle["attestations"] if e["uid"] == uid)


def test_tampered_bundles_are_unverifiable_with_the_precise_reason(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    bundle, ids = exported(ledger_env)
    forged = copy.deepcopy(bundle)
    sig = _entry(forged, ids["to_exporter"])["signature"]
    _entry(forged, ids["to_exporter"])["signature"] = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    assert Reason.BAD_SIGNATURE in bundle_verdict(ledger_env, forged)[1]
    altered = copy.deepcopy(bundle)
    _entry(altered, ids["made"])["payload"]["fields"]["quantity"]["value"] = 5000
    assert bundle_verdict(ledger_env, altered)[:2] == (Verdict.UNVERIFIABLE, {Reason.PAYLOAD_MISMATCH})
    rewritten = copy.deepcopy(bundle)
    _entry(rewritten, ids["made"])["typedData"]["message"]["issuedAt"] += 1
    assert Reason.UID_MISMATCH in bundle_verdict(ledger_env, rewritten)[1]
    reliability.record(
        "input",
        "proof bundle tampered (signature, payload value, signed field)",
        3,
        "BAD_SIGNATURE, PAYLOAD_MISMATCH, UID_MISMATCH respectively",
    )


def test_a_bundle_naming_another_ledger_or_an_impostor_anchor_is_refused(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    from ledger.chain.deploy import deploy

    bundle, ids = exported(ledger_env)
    elsewhere = copy.deepcopy(bundle)
    elsewhere["deployment"]["ledger"] = "0x" + "44" * 20
    assert bundle_verdict(ledger_env, elsewhere)[:2] == (Verdict.UNVERIFIABLE, {Reason.WRONG_CONTRACT})
    # An impostor contract anchors the same root; the bundle points at its transaction.
    w3 = ledger_env.deployment.w3
    impostor = deploy(w3, dev_account(0), dev_account(1).address)
    entry = _entry(bundle, ids["shipment"])
    from ledger.chain.client import contract_at

    receipt = call_and_send(
        w3,
        dev_account(1),
        contract_at(w3, "ProvenanceLedger", impostor.ledger).functions.anchorBatch(
            0, bytes.fromhex(entry["anchor"]["root"][2:]), bytes(32), 1
        ),
    )
    pointed = copy.deepcopy(bundle)
    _entry(pointed, ids["shipment"])["anchor"]["txHash"] = "0x" + bytes(receipt["transactionHash"]).hex()
    # Alone, the bundle's own anchor claims are judged (at a node, its own anchors are used).
    assert Reason.WRONG_CONTRACT in bundle_verdict(ledger_env, pointed, alone=True)[1]
    reliability.record(
        "input",
        "proof bundle naming another ledger / an impostor contract's anchor",
        2,
        "UNVERIFIABLE / WRONG_CONTRACT",
    )


def test_records_signed_without_standing_are_reported_by_their_reason(ledger_env: Ledger) -> None:
    """Bundles presented at the border may carry records our store would have refused."""
    bundle, ids = exported(ledger_env)
    story = Story(ledger_env)
    registry, w3 = ledger_env.deployment.registry, ledger_env.deployment.w3
    cases = []
    # An unknown party, a party without the exporter role, a suspended exporter, a rotated-out key.
    cases.append(("outsider", Reason.UNKNOWN_ATTESTER, None))
    cases.append(("carrier", Reason.ROLE_MISSING, None))
    call_and_send(w3, dev_account(0), registry.functions.suspend(actor("importer").address, b"\x00" * 32))
    call_and_send(w3, dev_account(0), registry.functions.grantRoles(actor("importer").address, 8))
    cases.append(("importer", Reason.ATTESTER_SUSPENDED, None))
    call_and_send(w3, dev_account(0), registry.functions.rotateKey(actor("exporter").address, dev_account(9).address))
    time.sleep(1.1)
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    cases.append(("exporter", Reason.KEY_NOT_VALID, None))
    for who, reason, _ in cases:
        story.t = max(story.t, ledger_env.deployment.now()) + 1
        shipment = story.ship([ids["to_exporter"]], 600, who=who, ingest=False)
        presented = copy.deepcopy(bundle)
        presented["shipment"] = shipment
        presented["attestations"].append({**story.last, "anchor": None})
        del presented["attestations"][-1]["confidential"]
        verdict, codes, result = bundle_verdict(ledger_env, presented)
        assert verdict is Verdict.UNVERIFIABLE or verdict is Verdict.FLAGGED
        assert reason in codes, (who, result.to_json())


def test_an_exported_bundle_checks_out_with_ethers_and_openzeppelin_merkle_tree(
    ledger_env: Ledger, tmp_path: Path
) -> None:
    """Third-party code, not ours: SPEC section 5's four invariants, checked in Node.js."""
    import json
    import subprocess

    from .conftest import REPO

    bundle, _ids = exported(ledger_env)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    out = subprocess.run(
        ["node", "tests/js/verify_bundle.js", str(path), ledger_env.settings.resolved_rpc_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(out.stdout)
    assert len(report) == len(bundle["attestations"]) == 6  # the shipment's history, asset to shipment
    for item in report:
        assert item["signerIsAttester"] and item["uidMatches"], item
        assert item["inclusion"] is True and item["rootOnChain"] is True, item
        assert item["disclosedFieldsMatch"] and item["payloadHashMatches"], item


def test_exported_bundles_follow_the_published_json_schema(ledger_env: Ledger) -> None:
    import json

    import jsonschema

    from .conftest import REPO

    bundle, _ids = exported(ledger_env)
    schema = json.loads((REPO / "docs" / "proof-bundle.schema.json").read_text())
    jsonschema.validate(bundle, schema)
    broken = copy.deepcopy(bundle)
    broken["attestations"][0]["signature"] = "0x1234"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_command_line_verifier_needs_the_bundle_an_rpc_url_and_a_mirror_to_verify(
    ledger_env: Ledger, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    from .conftest import REPO

    bundle, ids = exported(ledger_env)
    path, manifest = tmp_path / "bundle.json", tmp_path / "trusted.json"
    path.write_text(json.dumps(bundle))
    ledger_env.deployment.manifest.save(manifest)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["PROVENANCE_HOME"] = str(tmp_path / "empty-home")  # no database anywhere
    command = [
        sys.executable,
        "-m",
        "ledger.cli",
        "verify-bundle",
        str(path),
        "--rpc-url",
        ledger_env.settings.resolved_rpc_url,
        "--manifest",
        str(manifest),
        "--confirmations",
        "1",
        "--json",
    ]
    alone = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 11, alone.stderr  # nobody can say the evidence is complete
    checks = {c["check"]: c["status"] for c in json.loads(alone.stdout)["checks"]}
    assert checks.pop("completeness") == "SKIPPED" and set(checks.values()) == {"VALID"}
    assert not (tmp_path / "empty-home" / "ledger.db").exists()
    from .test_api import Server

    node = Server(ledger_env)  # an untrusted mirror: the node's own API
    try:
        mirrored = subprocess.run(
            [*command, "--mirror", f"http://127.0.0.1:{node.port}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        node.stop()
    assert mirrored.returncode == 0, mirrored.stdout + mirrored.stderr
    assert json.loads(mirrored.stdout)["verdict"] == "VERIFIED"
    flagged = copy.deepcopy(bundle)
    _entry(flagged, ids["made"])["payload"]["fields"]["quantity"]["value"] = 1
    path.write_text(json.dumps(flagged))
    bad = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 11 and json.loads(bad.stdout)["verdict"] == "UNVERIFIABLE"


def test_a_reorganisation_deeper_than_the_confirmations_is_detected_and_never_trusted(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    """The anchor of a verified shipment is dropped by a reorganisation deeper than the
    confirmation depth (anvil evm_snapshot / evm_revert, then a longer chain without it)."""
    ledger, w3 = ledger_env, ledger_env.deployment.w3
    story = Story(ledger)
    ids = story.clean_export()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    story.anchor(confirmations=2)
    for _ in range(5):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    anchor = ledger.anchor_of(ids["shipment"])
    assert anchor.status == "anchored" and anchor.block_number is not None
    assert w3.eth.block_number - anchor.block_number + 1 > 2  # deeper than the 2 confirmations
    assert verdict_of(ledger, ids["shipment"])[0] is Verdict.VERIFIED
    # The chain reorganises below the anchor and grows longer than it was.
    head_before = w3.eth.block_number
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    for _ in range(head_before - w3.eth.block_number + 3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert w3.eth.block_number > head_before
    assert ledger.deployment.ledger.functions.batchRoot(anchor.batch_index).call() == bytes(32)  # gone from the chain
    time.sleep(0.3)  # past the 250 ms for which a chain head is reused
    verdict, codes, _ = verdict_of(ledger, ids["shipment"])
    with ledger.engine.begin() as conn:  # the story's worker has stopped; its lease would lapse in 15 s
        conn.execute(text("UPDATE worker_leases SET expires_at = 0"))
    worker = ledger.anchoring_worker(confirmations=2, max_age=0.0)
    worker.step()
    status_after = ledger.anchor_of(ids["shipment"]).status
    observed = f"verdict {verdict.name} {sorted(c.name for c in codes)}, store says {status_after!r}"
    reliability.record(
        "fault",
        "chain reorganisation deeper than the confirmation depth drops a verified shipment's anchor",
        1,
        f"expected: not VERIFIED, anchor not reported anchored; observed: {observed}",
        kind="chain reorganisation",
    )
    assert verdict is not Verdict.VERIFIED and Reason.NOT_ANCHORED in codes, observed
    assert status_after != "anchored", observed
