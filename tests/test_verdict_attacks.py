"""Verdicts that no participant, presenter or database edit can talk into VERIFIED.

Each test is one attack, told as a story that names the adversary: an accredited
participant (signs anything its roles allow, picks its own `issuedAt`), the exporter
presenting a proof bundle (leaves records and fields out), the node's database
administrator (edits or deletes rows), and a hostile smart-contract wallet. Every
story runs on a real anvil chain, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from web3 import Web3

from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send
from ledger.chain.deploy import FOREVER
from ledger.core import Ledger
from ledger.fields import FieldError, check_fields, exact_quantity
from ledger.ingest import Rejected
from ledger.kinds import Kind
from ledger.payload import commit
from ledger.reasons import Reason
from ledger.roles import Role
from ledger.verify import CheckStatus, Verdict, VerificationPolicy
from ledger.verify.service import chain_view_for, verify_bundle, verify_in_store

from .conftest import REPO, ReliabilityRecorder
from .rpc_proxy import RefusingProxy
from .scenario import Story, actor


def mine(ledger: Ledger, blocks: int = 1) -> None:
    for _ in range(blocks):
        ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def registrar(ledger: Ledger, call: Any) -> None:
    call_and_send(ledger.deployment.w3, dev_account(0), call)


def admit(ledger: Ledger, name: str, role: Role) -> None:
    registrar(
        ledger,
        ledger.deployment.registry.functions.admit(actor(name).address, Web3.keccak(text=name), int(role), 0, FOREVER),
    )


def bundle_verdict(ledger: Ledger, bundle: dict[str, Any], **policy: Any) -> Any:
    """The command-line path: a fresh chain view, nothing from the node."""
    chain = chain_view_for(ledger.settings.resolved_rpc_url, ledger.deployment.manifest, 1)
    return verify_bundle(bundle, chain, VerificationPolicy(confirmations=1, **policy))


def entry(bundle: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(e for e in bundle["attestations"] if e["uid"] == uid)


def licensed_export(story: Story, **terms: Any) -> dict[str, str]:
    """A licensed production, one hand-over to the exporter, and its shipment to FR."""
    ids: dict[str, str] = {}
    ids["asset"] = story.asset()
    ids["licence"] = story.licence([ids["asset"]], **terms)
    ids["made"] = story.produce([ids["licence"]], quantity=1000)
    ids["to_exporter"] = story.transfer([ids["made"]], "maker", "exporter", 1000)
    ids["shipment"] = story.ship([ids["to_exporter"]], 1000)
    return ids


# ------------------------------------------------------------------ fail closed


def test_a_chain_node_refusing_log_reads_makes_checks_error_and_that_verdict_is_never_reused(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    """Simulated fault: a real proxy in front of anvil answers every method but refuses
    `eth_getLogs` (how a provider fails under load). The revocation scan is a log read:
    unknown revocations must never read as "none"."""
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    with RefusingProxy(ledger_env.settings.resolved_rpc_url).running() as proxy:
        proxy.refuse = {"eth_getLogs"}
        settings = ledger_env.settings.replace(rpc_url=proxy.url)
        node = Ledger.open(settings, manifest=ledger_env.deployment.manifest)
        try:
            result = node.verify_shipment(ids["shipment"])
            assert result.verdict is Verdict.UNVERIFIABLE and Reason.CHAIN_UNAVAILABLE in result.codes
            status = next(c for c in result.checks if c.name == "status")
            assert status.status is CheckStatus.ERROR
            assert proxy.refused > 0
            proxy.refuse = set()
            again = node.verify_shipment(ids["shipment"])
            assert again is not result and again.verdict is Verdict.VERIFIED, again.to_json()
        finally:
            node.close()
    reliability.record(
        "fault",
        "chain node refusing eth_getLogs during verification (simulated by a proxy)",
        1,
        "status check ERROR, UNVERIFIABLE, not cached; VERIFIED once logs are readable",
        kind="proxy",
    )


def test_a_database_administrator_flipping_a_byte_of_a_watch_list_signature_cannot_clear_the_shipment(
    ledger_env: Ledger,
) -> None:
    story = Story(ledger_env)
    watch = story.watch(["8413"])
    made = story.produce([])  # no licence: the watch list flags it
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    story.anchor()
    assert ledger_env.verify_shipment(shipment).codes == {Reason.WATCHLIST_HIT}
    with ledger_env.engine.begin() as conn:
        signature = conn.execute(text("SELECT signature FROM attestations WHERE uid = :u"), {"u": watch}).scalar_one()
        flipped = signature[:20] + ("1" if signature[20] != "1" else "2") + signature[21:]
        conn.execute(text("UPDATE attestations SET signature = :s WHERE uid = :u"), {"s": flipped, "u": watch})
    result = verify_in_store(ledger_env, shipment, ledger_env.policy)  # afresh: not a verdict from before the edit
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.BAD_SIGNATURE in result.codes, result.to_json()


def test_a_database_administrator_forging_registry_rows_cannot_accredit_a_key(ledger_env: Ledger) -> None:
    """The store's copy of the registry is not trusted: ingest and verdicts ask the chain."""
    outsider = actor("outsider").address.lower()
    ledger_env.indexer.sync()
    with ledger_env.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO chain_events (contract, event, block_number, block_hash, block_time, tx_hash,"
                " log_index, args) VALUES (:c, 'EffectiveRolesChanged', 1, :h, 0, :h, 0, '{}')"
            ),
            {"c": ledger_env.deployment.manifest.registry, "h": "0x" + "ee" * 32},
        )
        event_id = conn.execute(text("SELECT max(id) FROM chain_events")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO role_checkpoints (account, since, roles, granted, suspended, retired, valid_from,"
                " valid_until, event_id) VALUES (:a, 0, :r, :r, 0, 0, 0, :u, :e)"
            ),
            {"a": outsider, "r": int(Role.MANUFACTURER | Role.EXPORTER), "u": FOREVER, "e": event_id},
        )
    story = Story(ledger_env)
    with pytest.raises(Rejected) as refused:
        story.produce([], who="outsider")
    assert refused.value.reason is Reason.UNKNOWN_ATTESTER


def test_every_verification_path_applies_the_configured_policy(ledger_env: Ledger, tmp_path: Path) -> None:
    """PROVENANCE_REQUIRE_ACCEPTANCE reaches verify-by-id, the node's bundle path and the
    command line alike."""
    story = Story(ledger_env)
    ids = licensed_export(story)  # the hand-over to the exporter is never accepted
    story.anchor()
    strict = Ledger.open(ledger_env.settings.replace(require_acceptance=True), manifest=ledger_env.deployment.manifest)
    try:
        assert strict.verify_shipment(ids["shipment"]).verdict is Verdict.FLAGGED
        bundle = strict.export_bundle(ids["shipment"])
        assert strict.verify_bundle(bundle).verdict is Verdict.FLAGGED
    finally:
        strict.close()
    assert ledger_env.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    manifest = tmp_path / "manifest.json"
    ledger_env.deployment.manifest.save(manifest)
    command = [str(REPO / ".venv/bin/provenance"), "verify-bundle", str(path), "--manifest", str(manifest)]
    env = {
        "PATH": "/usr/bin:/bin",
        "PROVENANCE_RPC_URL": ledger_env.settings.resolved_rpc_url,
        "PROVENANCE_CONFIRMATIONS": "1",
        "PROVENANCE_HOME": str(tmp_path),
    }
    from .test_api import Server

    node = Server(ledger_env)  # an untrusted mirror completing the command line's evidence
    try:
        command += ["--mirror", f"http://127.0.0.1:{node.port}"]
        relaxed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        strict_run = subprocess.run(
            command,
            env={**env, "PROVENANCE_REQUIRE_ACCEPTANCE": "true"},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        node.stop()
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert strict_run.returncode == 10, strict_run.stdout + strict_run.stderr


def test_a_bad_policy_setting_is_refused_at_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.config import Settings

    monkeypatch.setenv("PROVENANCE_MANDATORY_CHECKS", "integrity,vibes")
    with pytest.raises(ValueError, match="PROVENANCE_MANDATORY_CHECKS"):
        Settings()
    monkeypatch.delenv("PROVENANCE_MANDATORY_CHECKS")
    monkeypatch.setenv("PROVENANCE_CONFIRMATIONS", "-1")
    with pytest.raises(ValueError, match="PROVENANCE_CONFIRMATIONS"):
        Settings()


def test_a_directly_recorded_shipment_needs_the_same_confirmations_as_a_batch(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = licensed_export(story)
    ledger_env.deployment.w3.provider.make_request("evm_increaseTime", [30])  # type: ignore[arg-type]
    mine(ledger_env)  # the chain's clock past the signing times (the contract refuses future ones)
    ledger_env.anchor_direct(ids["shipment"], dev_account(1))  # recorded directly, never batched
    story.anchor()
    demanding = VerificationPolicy(confirmations=30)
    result = ledger_env.verify_shipment(ids["shipment"], demanding)
    assert result.verdict is Verdict.UNVERIFIABLE, result.to_json()
    assert any(
        f.code is Reason.ANCHOR_UNCONFIRMED and f.uids == (ids["shipment"],) and "direct record" in f.message
        for f in result.findings
    ), result.to_json()
    mine(ledger_env, 30)
    assert ledger_env.verify_shipment(ids["shipment"], demanding).verdict is Verdict.VERIFIED


# ------------------------------------------------------- signing time is bounded


def test_a_signature_older_than_the_maximum_signature_age_is_refused_at_ingest(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    age = ledger_env.deployment.manifest.max_signature_age
    with pytest.raises(Rejected) as refused:
        story.sign(
            "maker",
            Kind.PRODUCTION,
            {"lot": "OLD", "quantity": 1, "unit": "pcs", "goodsClass": "841370"},
            "lot:OLD",
            at=int(time.time()) - age - 60,
        )
    assert refused.value.reason is Reason.SIGNATURE_TOO_OLD
    assert refused.value.field == "typedData.message.issuedAt"
    assert ledger_env.counts()["attestations"] == 0


def test_a_suspended_carrier_cannot_backdate_a_hand_over_to_before_its_suspension(ledger_env: Ledger) -> None:
    """The carrier signs after it lost its standing but dates the hand-over earlier. The
    record reaches the chain long after its claimed date, when the carrier no longer had
    standing: its signing time is not trusted. The same delay without the suspension
    (an honest record held up by a chain outage) stays VERIFIED."""
    story = Story(ledger_env)
    ids = story.clean_export()
    honest = Story(ledger_env)
    control = licensed_export(honest)
    w3 = ledger_env.deployment.w3
    w3.provider.make_request("evm_increaseTime", [60])  # type: ignore[arg-type]
    mine(ledger_env)  # the suspension comes after every claimed signing time
    registrar(ledger_env, ledger_env.deployment.registry.functions.suspend(actor("carrier").address, b"\x00" * 32))
    age = ledger_env.deployment.manifest.max_signature_age
    w3.provider.make_request("evm_increaseTime", [age + 3600])  # type: ignore[arg-type]
    story.anchor()
    result = ledger_env.verify_shipment(ids["shipment"])
    assert result.verdict is Verdict.FLAGGED and Reason.SIGNATURE_TOO_OLD in result.codes, result.to_json()
    assert ledger_env.verify_shipment(control["shipment"]).verdict is Verdict.VERIFIED


# ------------------------------------------- only those entitled to speak count


def test_a_stranger_signing_a_transfer_of_someone_elses_goods_cannot_flag_the_honest_shipment(
    ledger_env: Ledger,
) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    # The importer (accredited for custody, never given these goods) hands the exporter's goods on.
    claim = story.transfer([ids["to_exporter"]], "importer", "carrier", 600)
    story.anchor()
    result = ledger_env.verify_shipment(ids["shipment"])
    assert (result.verdict, result.codes) == (Verdict.VERIFIED, set()), result.to_json()
    notices = result.to_json()["notices"]
    assert any(n["code"] == "NOT_ENTITLED" and claim in n["uids"] for n in notices)


def test_an_unrelated_manufacturer_producing_under_someone_elses_licence_does_not_exhaust_its_cap(
    ledger_env: Ledger,
) -> None:
    admit(ledger_env, "outsider", Role.MANUFACTURER)
    story = Story(ledger_env)
    story.t = max(story.t, ledger_env.deployment.now())
    ids = licensed_export(story, quantityCap=1000)
    rogue = story.produce([ids["licence"]], quantity=50_000, who="outsider", lot="ROGUE")
    story.anchor()
    result = ledger_env.verify_shipment(ids["shipment"])
    assert (result.verdict, result.codes) == (Verdict.VERIFIED, set()), result.to_json()
    assert any(n.code is Reason.NOT_ENTITLED and rogue in n.uids for c in result.checks for n in c.notices)


def test_only_a_records_attester_may_revoke_it(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = licensed_export(story)
    with pytest.raises(Rejected) as refused:
        story.revoke(ids["to_exporter"], "carrier")  # a custody role, not the hand-over's signer
    assert refused.value.reason is Reason.NOT_ENTITLED
    story.anchor()
    assert ledger_env.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED


# ---------------------------------------------- rules read everything they need


@pytest.mark.parametrize(
    "trim",
    ["shipment destination", "licence quantityCap", "shipment goodsClass"],
)
def test_an_exporter_deleting_a_field_from_the_bundle_cannot_turn_flagged_into_verified(
    ledger_env: Ledger, trim: str, reliability: ReliabilityRecorder
) -> None:
    story = Story(ledger_env)
    if trim == "shipment destination":  # licensed for FR and DE only; shipped to US
        ids = licensed_export(story)
        ids["shipment"] = story.ship([ids["to_exporter"]], 1000, destination="US")
        target, name = ids["shipment"], "destination"
    elif trim == "licence quantityCap":  # 1000 produced under a cap of 500
        ids = licensed_export(story, quantityCap=500)
        target, name = ids["licence"], "quantityCap"
    else:  # watch-listed goods with no licence chain
        story.watch(["8413"])
        made = story.produce([])
        ids = {"shipment": story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)}
        target, name = ids["shipment"], "goodsClass"
    story.anchor()
    honest = ledger_env.verify_shipment(ids["shipment"])
    assert honest.verdict is Verdict.FLAGGED, honest.to_json()
    bundle = ledger_env.export_bundle(ids["shipment"])
    if target not in {e["uid"] for e in bundle["attestations"]}:  # the licence travels with its production
        pytest.fail(f"{trim}: the record to trim is not in the bundle")
    trimmed = copy.deepcopy(bundle)
    del entry(trimmed, target)["payload"]["fields"][name]
    alone = bundle_verdict(ledger_env, trimmed)  # only the bundle and the chain
    assert alone.verdict is not Verdict.VERIFIED, alone.to_json()
    assert alone.codes & {Reason.FIELD_INVALID, Reason.FIELD_UNDISCLOSED}, alone.to_json()
    at_node = ledger_env.verify_bundle(trimmed)  # completed from the node's copy: the findings come back
    assert at_node.verdict is not Verdict.VERIFIED and honest.codes <= at_node.codes, at_node.to_json()
    reliability.record("input", f"bundle with the {trim} deleted (commitment kept)", 1, "never VERIFIED")


def test_goods_produced_as_a_watch_listed_class_cannot_be_declared_as_another(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    story.watch(["9503"])  # toys: the rights holder's watch list
    made = story.produce([], goods="950300")  # unlicensed toys
    moved = story.transfer([made], "maker", "exporter", 1000)
    shipment = story.ship([moved], 1000, goods="841370")  # declared as pumps
    story.anchor()
    result = ledger_env.verify_shipment(shipment)
    assert result.verdict is Verdict.FLAGGED and Reason.GOODS_MISMATCH in result.codes, result.to_json()


def test_a_licence_that_expired_before_the_shipment_is_flagged(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    asset = story.asset()
    licence = story.licence([asset], validUntil=story.t + 3)  # valid at production, not at shipment
    made = story.produce([licence])
    moved = story.transfer([made], "maker", "exporter", 1000)
    story.t += 5
    shipment = story.ship([moved], 1000)
    story.anchor()
    result = ledger_env.verify_shipment(shipment)
    assert result.verdict is Verdict.FLAGGED and Reason.LICENCE_EXPIRED in result.codes, result.to_json()


def test_a_production_citing_a_licence_the_exporter_left_out_of_the_bundle_is_licence_missing(
    ledger_env: Ledger,
) -> None:
    story = Story(ledger_env)
    ids = licensed_export(story)
    story.anchor()
    bundle = ledger_env.export_bundle(ids["shipment"])
    bundle["attestations"] = [e for e in bundle["attestations"] if e["uid"] not in (ids["licence"], ids["asset"])]
    result = bundle_verdict(ledger_env, bundle)  # alone: the chain and the trimmed bundle
    assert result.verdict is not Verdict.VERIFIED and Reason.LICENCE_MISSING in result.codes, result.to_json()
    # At a node the licence comes back from its own copy: the omission changes nothing.
    assert ledger_env.verify_bundle(bundle).verdict is Verdict.VERIFIED


def test_the_reason_table_says_a_sub_licence_without_the_right_is_licence_missing() -> None:
    assert "sub-licen" in Reason.LICENCE_MISSING.info.meaning
    assert "sub-licen" not in Reason.LICENCE_REVOKED.info.meaning


def test_a_database_administrator_deleting_a_hand_over_gets_a_reasoned_verdict_not_a_crash(
    ledger_env: Ledger,
) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    with ledger_env.engine.begin() as conn:
        conn.execute(text("DELETE FROM attestation_refs WHERE uid = :u"), {"u": ids["to_exporter"]})
        conn.execute(text("DELETE FROM attestations WHERE uid = :u"), {"u": ids["to_exporter"]})
    ledger_env._batch_nodes.cache_clear()
    result = verify_in_store(ledger_env, ids["shipment"], ledger_env.policy)  # afresh, not from before the edit
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.STORE_CORRUPTED in result.codes, result.to_json()


def test_a_reference_row_rewritten_to_smuggle_a_second_reference_is_not_read_as_two(ledger_env: Ledger) -> None:
    """A record's references reach verification in one column ("position:uid" pairs
    joined by commas): a reference row rewritten to hold a separator reads back as a
    record that is not the one signed (or as a reference no row holds), never VERIFIED."""
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    with ledger_env.engine.begin() as conn:
        ref = str(
            conn.execute(text("SELECT ref FROM attestation_refs WHERE uid = :u"), {"u": ids["to_exporter"]}).scalar()
        )
        # PostgreSQL holds a reference in 66 characters; SQLite holds anything.
        smuggled = f"{ref},0:{ref}" if conn.dialect.name == "sqlite" else f"{ref[:30]},0:{ref[:33]}"
        conn.execute(
            text("UPDATE attestation_refs SET ref = :r WHERE uid = :u"), {"r": smuggled, "u": ids["to_exporter"]}
        )
    result = verify_in_store(ledger_env, ids["shipment"], ledger_env.policy)
    assert result.verdict is Verdict.UNVERIFIABLE, result.to_json()


# --------------------------------------------------- inputs cannot slip past


@pytest.mark.parametrize(
    "kind, fields, bad",
    [
        (Kind.SHIPMENT, {"quantity": 1, "unit": "pcs", "goodsClass": "841370", "destination": "US\n"}, "destination"),
        (Kind.SHIPMENT, {"quantity": 1, "unit": "pcs", "goodsClass": "841370\n", "destination": "US"}, "goodsClass"),
        (Kind.PRODUCTION, {"lot": "LOT-1\n", "quantity": 1, "unit": "pcs", "goodsClass": "841370"}, "lot"),
        (Kind.TRANSFER, {"lot": "L", "quantity": 1, "unit": "pcs", "to": "0x" + "ab" * 20 + "\n"}, "to"),
        (Kind.PRODUCTION, {"lot": "L", "quantity": 1e-7, "unit": "pcs", "goodsClass": "841370"}, "quantity"),
        (Kind.PRODUCTION, {"lot": "L", "quantity": 1e16, "unit": "pcs", "goodsClass": "841370"}, "quantity"),
    ],
)
def test_values_with_a_trailing_newline_or_inexact_quantities_are_refused(
    kind: Kind, fields: dict[str, Any], bad: str
) -> None:
    with pytest.raises(FieldError) as refused:
        check_fields(kind, commit(fields).disclosure, 1)
    assert refused.value.field == bad


def test_quantities_are_compared_exactly_at_the_cap(ledger_env: Ledger) -> None:
    """0.1 + 0.2 produced under a cap of 0.3 is exactly at the cap (floats say 0.30000000000000004)."""
    assert exact_quantity(0.1) + exact_quantity(0.2) == exact_quantity(0.3)  # type: ignore[operator]
    story = Story(ledger_env)
    asset = story.asset()
    licence = story.licence([asset], quantityCap=0.3)
    first = story.produce([licence], quantity=0.1, lot="A")  # type: ignore[arg-type]
    second = story.produce([licence], quantity=0.2, lot="B")  # type: ignore[arg-type]
    moved = story.transfer([first, second], "maker", "exporter", 0.3, lot="A")  # type: ignore[arg-type]
    shipment = story.ship([moved], 0.3)  # type: ignore[arg-type]
    story.anchor()
    result = ledger_env.verify_shipment(shipment)
    assert (result.verdict, result.codes) == (Verdict.VERIFIED, set()), result.to_json()


# ------------------------------------------------------ bounded verification


def test_thousands_of_unrelated_watch_list_entries_stay_out_of_the_evidence(ledger_env: Ledger) -> None:
    from ledger.submission import build_submission
    from ledger.verify.evidence import evidence_from_store

    story = Story(ledger_env)
    ids = story.clean_export()
    spam = [
        build_submission(
            actor("rights_holder"),
            Kind.WATCHLIST,
            ledger_env.domain,
            {"goodsClasses": [f"{9000 + i % 900}"]},
            subject=f"watch:{i}",
            issued_at=story.t,
        )
        for i in range(2000)
    ]
    for start in range(0, len(spam), 500):
        ledger_env.ingest_many(spam[start : start + 500])  # type: ignore[arg-type]
    story.anchor()
    evidence = evidence_from_store(ledger_env, ids["shipment"])
    watch = [r.uid for r in evidence.of_kind(Kind.WATCHLIST)]
    assert watch == [ids["watch"]]
    assert ledger_env.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED


def test_a_gas_burning_wallet_distrusts_only_its_own_records(ledger_env: Ledger) -> None:
    """A participant whose ERC-1271 wallet burns all gas: its signature check is capped,
    and only its own records are untrusted; other shipments verify, and ingest asks the
    registry before running an unaccredited wallet's code."""
    from ledger.chain.deploy import deploy_contract
    from ledger.submission import build_submission

    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    w3 = ledger_env.deployment.w3
    burner = deploy_contract(w3, dev_account(9), "TestGasBurnerWallet")
    production = build_submission(
        actor("maker"),
        Kind.PRODUCTION,
        ledger_env.domain,
        {"lot": "W", "quantity": 1, "unit": "pcs", "goodsClass": "841370"},
        subject="lot:W",
        issued_at=story.t,
    )
    production["typedData"]["message"]["attester"] = burner
    del production["uid"]  # re-addressed to the wallet: the UID is recomputed from the typed data
    started = time.monotonic()
    with pytest.raises(Rejected) as refused:
        ledger_env.ingest(production)
    assert refused.value.reason is Reason.UNKNOWN_ATTESTER  # refused on the registry, before any wallet call
    registry = ledger_env.deployment.registry
    registrar(
        ledger_env, registry.functions.admit(burner, Web3.keccak(text="burner"), int(Role.MANUFACTURER), 0, FOREVER)
    )
    mine(ledger_env)
    with pytest.raises(Rejected) as refused:
        ledger_env.ingest(production)
    assert refused.value.reason is Reason.BAD_SIGNATURE
    assert time.monotonic() - started < 10
    checker = ledger_env.checker
    from ledger.eip712 import parse_typed_data

    attestation, domain = parse_typed_data(production["typedData"])
    assert not checker.check(attestation, domain, bytes.fromhex(production["signature"][2:])).valid
    assert ledger_env.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED


def test_the_licence_cap_counts_productions_made_later_and_a_lowered_sibling_quantity_is_caught(
    ledger_env: Ledger,
) -> None:
    """The node keeps a running view of each licence's productions (not read per
    verification). A production made after a first VERIFIED verdict still counts; a
    database administrator lowering a sibling production's quantity to get under the cap
    is caught when the row is read, never counted as the lower number."""
    story = Story(ledger_env)
    ids = licensed_export(story, quantityCap=1500)  # 1000 made and shipped
    story.anchor()
    assert ledger_env.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED
    sibling = story.produce([ids["licence"]], quantity=1000, lot="LOT-2")  # 2000 under a cap of 1500
    story.anchor()
    later = ledger_env.verify_shipment(ids["shipment"])
    assert later.verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in later.codes, later.to_json()
    with ledger_env.engine.begin() as conn:
        disclosed = json.loads(
            conn.execute(text("SELECT disclosed FROM attestations WHERE uid = :u"), {"u": sibling}).scalar_one()
        )
        disclosed["quantity"]["value"] = 1
        conn.execute(
            text("UPDATE attestations SET disclosed = :d WHERE uid = :u"), {"d": json.dumps(disclosed), "u": sibling}
        )
    fresh = Ledger.open(ledger_env.settings, manifest=ledger_env.deployment.manifest)  # reads the edited row anew
    try:
        result = fresh.verify_shipment(ids["shipment"])
    finally:
        fresh.close()
    assert result.verdict is Verdict.UNVERIFIABLE and Reason.STORE_CORRUPTED in result.codes, result.to_json()


def test_with_finality_by_the_chains_finalized_tag_an_anchor_counts_only_once_finalized(ledger_env: Ledger) -> None:
    """PROVENANCE_CONFIRMATION_MODE=finalized reaches verification too: an anchor a few
    blocks deep is not final until the chain's `finalized` block passes it (anvil marks
    the head minus 64 blocks finalized)."""
    story = Story(ledger_env)
    ids = licensed_export(story)
    story.anchor()
    by_tag = VerificationPolicy(confirmations=1, confirmation_mode="finalized")
    early = ledger_env.verify_shipment(ids["shipment"], by_tag)
    assert early.verdict is Verdict.UNVERIFIABLE and Reason.ANCHOR_UNCONFIRMED in early.codes, early.to_json()
    assert "finalized block" in " ".join(f.message for f in early.findings)
    assert ledger_env.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED  # by depth: final already
    mine(ledger_env, 70)
    assert ledger_env.verify_shipment(ids["shipment"], by_tag).verdict is Verdict.VERIFIED
