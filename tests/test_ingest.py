"""Ingest: everything is validated before acknowledgement; invalid input stores nothing."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send
from ledger.core import Ledger
from ledger.eip712 import Domain
from ledger.ingest import Rejected
from ledger.kinds import Kind
from ledger.reasons import Reason
from ledger.store.models import AttestationRefRow, AttestationRow
from ledger.submission import build_submission

from .conftest import ACTORS, ReliabilityRecorder
from .scenario import signing_time


def actor(name: str) -> LocalAccount:
    return dev_account(ACTORS[name])


def sign(ledger: Ledger, who: str, kind: Kind, fields: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("issued_at", signing_time(ledger))
    return build_submission(actor(who), kind, ledger.domain, fields, **kw)


def stored_count(ledger: Ledger) -> int:
    with ledger.sessions() as session:
        return int(session.scalar(select(func.count(AttestationRow.id))) or 0)


def production(ledger: Ledger, **kw: Any) -> dict[str, Any]:
    fields = kw.pop("fields", {"lot": "LOT-42", "quantity": 1000, "unit": "pcs", "goodsClass": "847130"})
    return sign(ledger, kw.pop("who", "maker"), Kind.PRODUCTION, fields, subject="lot:LOT-42", **kw)


def assert_refused(ledger: Ledger, submission: object, reason: Reason, field: str | None = None) -> Rejected:
    before = stored_count(ledger)
    with pytest.raises(Rejected) as caught:
        ledger.ingest(submission)
    assert caught.value.reason is reason, caught.value
    if field is not None:
        assert caught.value.field == field
    assert stored_count(ledger) == before, "a rejected attestation must store nothing"
    return caught.value


def test_a_valid_production_is_stored_and_a_resubmission_is_the_same_record(ledger_env: Ledger) -> None:
    ledger = ledger_env
    submission = production(ledger)
    first = ledger.ingest(submission)
    assert first.created and first.uid == submission["uid"]
    again = ledger.ingest(copy.deepcopy(submission))
    assert again.uid == first.uid and not again.created
    assert stored_count(ledger) == 1
    record = ledger.get_attestation(first.uid)
    assert record is not None
    assert record["typedData"] == submission["typedData"]
    assert record["anchor"]["status"] == "pending"


def test_every_kind_is_accepted_from_an_accredited_attester(ledger_env: Ledger) -> None:
    ledger = ledger_env
    asset = ledger.ingest(
        sign(
            ledger,
            "rights_holder",
            Kind.IP_ASSET,
            {"title": "Pump impeller design"},
            subject="asset:impeller",
            disclose=set(),
        )
    )
    licence = ledger.ingest(
        sign(
            ledger,
            "rights_holder",
            Kind.LICENCE,
            {
                "licensee": actor("maker").address,
                "goodsClasses": ["841370"],
                "territories": ["DE", "FR"],
                "validFrom": 0,
                "validUntil": 2**40,
                "quantityCap": 5000,
                "sublicensing": False,
            },
            subject="licence:1",
            refs=[asset.uid],
        )
    )
    made = ledger.ingest(
        sign(
            ledger,
            "maker",
            Kind.PRODUCTION,
            {"lot": "L1", "quantity": 100, "unit": "pcs", "goodsClass": "841370"},
            subject="lot:L1",
            refs=[licence.uid],
        )
    )
    moved = ledger.ingest(
        sign(
            ledger,
            "maker",
            Kind.TRANSFER,
            {"lot": "L1", "quantity": 100, "unit": "pcs", "to": actor("carrier").address},
            subject="lot:L1",
            refs=[made.uid],
        )
    )
    accepted = ledger.ingest(
        sign(ledger, "carrier", Kind.TRANSFER_ACCEPTANCE, {"note": "received"}, subject="lot:L1", refs=[moved.uid])
    )
    shipped = ledger.ingest(
        sign(
            ledger,
            "exporter",
            Kind.SHIPMENT,
            {"quantity": 100, "unit": "pcs", "goodsClass": "841370", "destination": "FR", "shipmentId": "SHP-1"},
            subject="shipment:SHP-1",
            refs=[accepted.uid],
        )
    )
    ledger.ingest(
        sign(
            ledger,
            "customs",
            Kind.CUSTOMS_FINDING,
            {"finding": "INSPECTED_OK"},
            subject="shipment:SHP-1",
            refs=[shipped.uid],
        )
    )
    ledger.ingest(sign(ledger, "rights_holder", Kind.WATCHLIST, {"goodsClasses": ["841370"]}, subject="watch:pumps"))
    ledger.ingest(sign(ledger, "maker", Kind.REVOCATION, {"reason": "typo"}, subject="lot:L1", refs=[moved.uid]))
    assert stored_count(ledger) == 9
    with ledger.sessions() as session:
        refs = session.scalars(select(AttestationRefRow.ref).where(AttestationRefRow.uid == shipped.uid)).all()
    assert refs == [accepted.uid]


def test_undisclosed_trade_secret_fields_never_reach_the_store(ledger_env: Ledger) -> None:
    ledger = ledger_env
    secret = {"title": "Impeller", "formula": "blade angle 17.5 deg, alloy X-93"}
    submission = sign(ledger, "rights_holder", Kind.IP_ASSET, secret, subject="asset:x", disclose={"title"})
    uid = ledger.ingest(submission).uid
    with ledger.sessions() as session:
        row = session.scalars(select(AttestationRow).where(AttestationRow.uid == uid)).one()
    assert "alloy" not in row.disclosed and "formula" not in row.disclosed and row.sealed is None
    assert len(submission["payload"]["fieldHashes"]) == 2


def test_confidential_fields_are_encrypted_at_rest_and_readable_through_the_core(ledger_env: Ledger) -> None:
    ledger = ledger_env
    submission = production(
        ledger,
        fields={"lot": "LOT-9", "quantity": 5, "unit": "pcs", "goodsClass": "847130", "unitPrice": "EUR 1234.50"},
        confidential=["unitPrice"],
    )
    uid = ledger.ingest(submission).uid
    with ledger.sessions() as session:
        row = session.scalars(select(AttestationRow).where(AttestationRow.uid == uid)).one()
    assert row.sealed is not None and b"1234.50" not in row.sealed and "1234.50" not in row.disclosed
    public = ledger.get_attestation(uid)
    assert public is not None and "unitPrice" not in public["payload"]["fields"]
    full = ledger.get_attestation(uid, include_confidential=True)
    assert full is not None and full["payload"]["fields"]["unitPrice"]["value"] == "EUR 1234.50"


def test_forged_truncated_and_malleable_signatures_are_refused(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    forged = production(ledger)
    forged["signature"] = production(ledger, who="carrier")["signature"]
    assert_refused(ledger, forged, Reason.BAD_SIGNATURE, "signature")
    truncated = production(ledger)
    truncated["signature"] = truncated["signature"][:-4]
    assert_refused(ledger, truncated, Reason.BAD_SIGNATURE, "signature")
    malleable = production(ledger)
    sig = bytes.fromhex(malleable["signature"][2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    malleable["signature"] = "0x" + (sig[:32] + high_s + bytes([55 - sig[64]])).hex()
    refused = assert_refused(ledger, malleable, Reason.BAD_SIGNATURE)
    assert "high s" in refused.detail
    outcome = "refused BAD_SIGNATURE, nothing stored"
    reliability.record("input", "forged signature (another key's)", 1, outcome)
    reliability.record("input", "truncated signature", 1, outcome)
    reliability.record("input", "malleable high-s twin of a valid signature", 1, outcome + " (detail names high s)")


def test_signatures_for_another_chain_or_deployment_are_refused(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    for other in (Domain(1, ledger.domain.verifying_contract), Domain(ledger.domain.chain_id, "0x" + "22" * 20)):
        replayed = build_submission(
            actor("maker"),
            Kind.PRODUCTION,
            other,
            {"lot": "L", "quantity": 1, "unit": "pcs", "goodsClass": "847130"},
            subject="lot:L",
        )
        assert_refused(ledger, replayed, Reason.WRONG_DOMAIN, "typedData.domain")
    reliability.record(
        "input",
        "signature for another chainId / another contract (replay from another deployment)",
        2,
        "refused WRONG_DOMAIN on typedData.domain, nothing stored",
    )


def test_tampered_payload_and_wrong_uid_are_refused(ledger_env: Ledger, reliability: ReliabilityRecorder) -> None:
    ledger = ledger_env
    tampered = production(ledger)
    tampered["payload"]["fields"]["quantity"]["value"] = 999999
    assert_refused(ledger, tampered, Reason.PAYLOAD_MISMATCH, "payload")
    dropped = production(ledger)
    dropped["payload"]["fieldHashes"] = dropped["payload"]["fieldHashes"][1:]
    assert_refused(ledger, dropped, Reason.PAYLOAD_MISMATCH)
    wrong_uid = production(ledger)
    wrong_uid["uid"] = "0x" + "ab" * 32
    assert_refused(ledger, wrong_uid, Reason.UID_MISMATCH, "uid")
    reliability.record(
        "input", "payload value changed / field hash dropped after signing", 2, "refused PAYLOAD_MISMATCH"
    )
    reliability.record("input", "claimed UID not the EIP-712 digest", 1, "refused UID_MISMATCH on uid")


def test_attesters_without_standing_are_refused_with_the_precise_reason(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    assert_refused(ledger, production(ledger, who="outsider"), Reason.UNKNOWN_ATTESTER)
    assert_refused(ledger, production(ledger, who="carrier"), Reason.ROLE_MISSING)
    registry, w3 = ledger.deployment.registry, ledger.deployment.w3
    call_and_send(w3, dev_account(0), registry.functions.suspend(actor("maker").address, b"\x00" * 32))
    time.sleep(1.1)
    assert_refused(ledger, production(ledger), Reason.ATTESTER_SUSPENDED)
    call_and_send(w3, dev_account(0), registry.functions.reinstate(actor("maker").address))
    call_and_send(w3, dev_account(0), registry.functions.rotateKey(actor("maker").address, dev_account(9).address))
    time.sleep(1.1)
    assert_refused(ledger, production(ledger), Reason.KEY_NOT_VALID)
    reliability.record(
        "input",
        "attester unregistered / without the role / suspended / with a rotated-out key",
        4,
        "refused UNKNOWN_ATTESTER, ROLE_MISSING, ATTESTER_SUSPENDED, KEY_NOT_VALID respectively, nothing stored",
    )


def test_a_signature_made_before_rotation_stays_acceptable(ledger_env: Ledger) -> None:
    ledger = ledger_env
    early = production(ledger, issued_at=signing_time(ledger))
    time.sleep(1.1)
    registry, w3 = ledger.deployment.registry, ledger.deployment.w3
    call_and_send(w3, dev_account(0), registry.functions.rotateKey(actor("maker").address, dev_account(9).address))
    assert ledger.ingest(early).created


def test_future_timestamps_unknown_references_and_bad_fields_are_refused(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    assert_refused(ledger, production(ledger, issued_at=int(time.time()) + 3600), Reason.ISSUED_IN_FUTURE)
    orphan = sign(
        ledger,
        "maker",
        Kind.TRANSFER,
        {"lot": "L", "quantity": 1, "unit": "pcs", "to": actor("carrier").address},
        subject="lot:L",
        refs=["0x" + "cd" * 32],
    )
    assert_refused(ledger, orphan, Reason.UNKNOWN_REFERENCE, "typedData.message.refs")
    bad_fields = [
        ({"lot": "LOT\u200b42", "quantity": 1, "unit": "pcs", "goodsClass": "847130"}, "lot"),  # zero-width space
        ({"lot": "LОT-42", "quantity": 1, "unit": "pcs", "goodsClass": "847130"}, "lot"),  # Cyrillic O
        ({"lot": "LOT\n42", "quantity": 1, "unit": "pcs", "goodsClass": "847130"}, "lot"),
        ({"lot": "LOT-42", "quantity": -5, "unit": "pcs", "goodsClass": "847130"}, "quantity"),
        ({"lot": "LOT-42", "quantity": 1, "unit": "pcs"}, "goodsClass"),
        ({"lot": "LOT-42", "quantity": 1, "unit": "pcs", "goodsClass": "8471", "note": "bell\x07"}, "note"),
    ]
    for fields, field in bad_fields:
        assert_refused(ledger, production(ledger, fields=fields), Reason.FIELD_INVALID, field)
    reliability.record("input", "issuedAt an hour in the future", 1, "refused ISSUED_IN_FUTURE")
    reliability.record("input", "reference to an unknown attestation", 1, "refused UNKNOWN_REFERENCE on refs")
    reliability.record(
        "input",
        "identifiers with zero-width / confusable Cyrillic / control characters",
        4,
        "refused FIELD_INVALID naming the field",
    )
    reliability.record(
        "input", "negative quantity, missing required field", 2, "refused FIELD_INVALID naming the field"
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: "not an object",
        lambda s: {**s, "extra": 1},
        lambda s: {k: v for k, v in s.items() if k != "payload"},
        lambda s: {**s, "typedData": {**s["typedData"], "primaryType": "Nonsense"}},
        lambda s: {**s, "typedData": {**s["typedData"], "message": {**s["typedData"]["message"], "issuedAt": -1}}},
        lambda s: {**s, "typedData": {**s["typedData"], "message": {**s["typedData"]["message"], "refs": "x"}}},
        lambda s: {**s, "payload": {"fieldHashes": "nope"}},
    ],
)
def test_malformed_submissions_are_refused_and_store_nothing(
    ledger_env: Ledger, mangle: Callable[[dict[str, Any]], dict[str, Any]], reliability: ReliabilityRecorder
) -> None:
    assert_refused(ledger_env, mangle(production(ledger_env)), Reason.MALFORMED)
    reliability.record(
        "input",
        "malformed submission (not an object, extra key, no payload, unknown type, bad time, bad refs, bad hashes)",
        1,
        "refused MALFORMED, nothing stored",
    )


def test_a_batch_stores_the_valid_items_and_reports_each_one(ledger_env: Ledger) -> None:
    ledger = ledger_env
    good = production(ledger)
    bad = production(ledger, who="outsider")
    follow = sign(
        ledger,
        "maker",
        Kind.TRANSFER,
        {"lot": "LOT-42", "quantity": 10, "unit": "pcs", "to": actor("carrier").address},
        subject="lot:LOT-42",
        refs=[good["uid"]],
    )
    results = ledger.ingest_many([good, bad, follow, good])
    assert [type(r).__name__ for r in results] == ["Accepted", "Rejected", "Accepted", "Accepted"]
    assert results[0].created and results[2].created and not results[3].created  # type: ignore[union-attr]
    assert stored_count(ledger) == 2


def test_disclosed_values_so_dense_that_mirrors_would_refuse_their_batch_are_refused(ledger_env: Ledger) -> None:
    """A signer discloses a field of 100 lists of 200 empty arrays (lists hold at most 200
    items, so they are nested): 60 KB that take over 2.5 MB to parse. Accepted, it would
    sit in a batch that every mirroring node refuses unparsed for its density, and no
    node could ever be complete past it. Refused at the door; long lists of ordinary
    values (2,000 goods classes) are accepted."""
    ledger = ledger_env
    fields = {"lot": "LOT-42", "quantity": 1000, "unit": "pcs", "goodsClass": "847130", "notes": [[[]] * 200] * 100}
    refused = assert_refused(ledger, production(ledger, fields=fields), Reason.FIELD_INVALID, "payload.fields")
    assert "too dense" in str(refused)
    classes = [[f"{840000 + 200 * i + j}" for j in range(200)] for i in range(10)]
    fields = {"lot": "LOT-42", "quantity": 1000, "unit": "pcs", "goodsClass": "847130", "notes": classes}
    before = stored_count(ledger)
    ledger.ingest(production(ledger, fields=fields))
    assert stored_count(ledger) == before + 1
