"""EPCIS 2.0 in and out: GS1's own example documents and a lot told entirely in EPCIS,
signed by its participants, anchored, verified by customs and exported again."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ledger.core import Ledger
from ledger.epcis.importer import ImportContext, ImportRefused, Party, plan_import, sign_plan
from ledger.epcis.ledger_index import StoreIndex
from ledger.epcis.mapping import markdown_table
from ledger.epcis.service import export_lot, export_shipment, import_signed
from ledger.gs1 import canonical
from ledger.verify.model import Verdict

from .scenario import Story, actor, signing_time

GS1 = Path(__file__).resolve().parents[2] / "shared" / "gs1-epcis"
if not GS1.is_dir():
    GS1 = Path("/work/shared/gs1-epcis")
SCHEMA = json.loads((GS1 / "EPCIS-JSON-Schema.json").read_text())
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

MAKER_PGLN = "urn:epc:id:pgln:4012345.00001"
EXPORTER_PGLN = "urn:epc:id:pgln:0614141.00001"
BUYER_PGLN = "urn:epc:id:pgln:0012345.00001"


def gs1_example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GS1 / name).read_text())
    return loaded


def document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-01-10T10:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def event(kind: str, event_id: str, **body: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "eventID": event_id,
        "eventTime": "2026-01-10T09:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        **body,
    }


def context() -> ImportContext:
    return ImportContext(
        parties={
            MAKER_PGLN: Party(actor("maker").address, "DE"),
            EXPORTER_PGLN: Party(actor("exporter").address, "DE"),
            # The owning party GS1's example 9.6.2 receives for: the importer here.
            "urn:epc:id:sgln:0614141.00001.0": Party(actor("importer").address, "FR"),
            BUYER_PGLN: Party(actor("importer").address, "FR"),
        },
        goods_classes={
            "urn:epc:idpat:sgtin:4012345.077889.*": "210690",
            "urn:epc:idpat:sgtin:4012345.012345.*": "090111",
            "urn:epc:idpat:sgtin:0614141.107346.*": "847130",
        },
    )


def run_import(ledger: Ledger, who: str, doc: dict[str, Any]) -> list[str]:
    """Map, sign as `who`, and store all or nothing; the UIDs stored or already there."""
    account = actor(who)
    plan = plan_import(doc, account.address, context(), StoreIndex(ledger.sessions))
    submissions = sign_plan(plan, account, ledger.domain, issued_at=signing_time(ledger))
    return [a.uid for a in import_signed(ledger, submissions)]


def valid_epcis(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, SCHEMA)


def core(ev: dict[str, Any]) -> dict[str, Any]:
    """An exported event without what the ledger adds (its attestations)."""
    return {k: v for k, v in ev.items() if k != "prov:attestations"}


# ------------------------------------------------------------------ the documents


def commission_lot(quantity: int = 1000) -> dict[str, Any]:
    return event(
        "ObjectEvent",
        "urn:uuid:0b0e0c1a-0000-4000-8000-000000000001",
        action="ADD",
        bizStep="commissioning",
        disposition="active",
        readPoint={"id": "urn:epc:id:sgln:4012345.00001.0"},
        bizLocation={"id": "urn:epc:id:sgln:4012345.00001.0"},
        quantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": quantity}],
    )


def ship_lot(
    to: str, quantity: float, uom: str | None = None, event_id: str = "urn:uuid:0b0e0c1a-0000-4000-8000-000000000002"
) -> dict[str, Any]:
    q: dict[str, Any] = {"epcClass": "https://id.gs1.org/01/04012345123456/10/998877", "quantity": quantity}
    if uom:
        q["uom"] = uom
    return event(
        "ObjectEvent",
        event_id,
        action="OBSERVE",
        bizStep="shipping",
        disposition="in_transit",
        readPoint={"id": "urn:epc:id:sgln:4012345.00001.0"},
        quantityList=[q],
        bizTransactionList=[{"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000016:4711"}],
        sourceList=[{"type": "owning_party", "source": MAKER_PGLN}],
        destinationList=[{"type": "owning_party", "destination": to}],
    )


# --------------------------------------------------------------------------- tests


def test_mapping_document_is_generated_from_the_code_table() -> None:
    written = (Path(__file__).resolve().parents[1] / "docs" / "epcis-mapping.md").read_text()
    assert markdown_table() in written


def test_lot_told_in_epcis_is_verified_by_customs_and_exported_as_valid_epcis(ledger_env: Ledger) -> None:
    maker_doc = document(commission_lot(), ship_lot(EXPORTER_PGLN, 1000))
    made, shipped = run_import(ledger_env, "maker", maker_doc)
    exporter_doc = document(
        event(
            "ObjectEvent",
            "urn:uuid:0b0e0c1a-0000-4000-8000-000000000003",
            action="OBSERVE",
            bizStep="receiving",
            disposition="in_progress",
            readPoint={"id": "urn:epc:id:sgln:0614141.00777.0"},
            quantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 1000}],
            sourceList=[{"type": "owning_party", "source": MAKER_PGLN}],
        ),
        event(
            "TransactionEvent",
            "urn:uuid:0b0e0c1a-0000-4000-8000-000000000004",
            action="ADD",
            bizStep="shipping",
            quantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 600}],
            bizTransactionList=[{"type": "po", "bizTransaction": "http://transaction.example.com/po/42"}],
            destinationList=[{"type": "owning_party", "destination": BUYER_PGLN}],
        ),
    )
    accepted, shipment = run_import(ledger_env, "exporter", exporter_doc)
    Story(ledger_env).anchor()

    result = ledger_env.verify_shipment(shipment)
    assert result.verdict is Verdict.VERIFIED, [f.message for c in result.checks for f in c.findings]

    exported = export_shipment(ledger_env, shipment)
    valid_epcis(exported)
    events = exported["epcisBody"]["eventList"]
    assert [e["eventID"] for e in events] == [
        e["eventID"] for e in maker_doc["epcisBody"]["eventList"] + exporter_doc["epcisBody"]["eventList"]
    ]
    for ev in events:
        (attestation,) = ev["prov:attestations"]
        assert attestation["anchor"]["status"] == "anchored" and attestation["anchor"]["root"]
    assert {a["uid"] for e in events for a in e["prov:attestations"]} == {made, shipped, accepted, shipment}
    # Round trip: every event keeps identity, time, what, where, why and quantities.
    originals = maker_doc["epcisBody"]["eventList"] + exporter_doc["epcisBody"]["eventList"]
    assert [core(e) for e in events] == originals


def test_reimporting_the_same_document_stores_nothing_new(ledger_env: Ledger) -> None:
    doc = document(commission_lot(), ship_lot(EXPORTER_PGLN, 400))
    first = run_import(ledger_env, "maker", doc)
    before = ledger_env.counts()["attestations"]
    plan = plan_import(doc, actor("maker").address, context(), StoreIndex(ledger_env.sessions))
    assert plan.items == [] and sorted(plan.already_recorded) == sorted(
        e["eventID"] for e in doc["epcisBody"]["eventList"]
    )
    assert run_import(ledger_env, "maker", doc) == []
    assert ledger_env.counts()["attestations"] == before == len(first)


def test_same_goods_under_two_spellings_are_one_lot(ledger_env: Ledger) -> None:
    run_import(ledger_env, "maker", document(commission_lot(100)))
    # Shipped under its Digital Link spelling, commissioned under its EPC URN: one lot, so
    # shipping 150 of the 100 made is refused.
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "maker", document(ship_lot(EXPORTER_PGLN, 150)))
    assert "holds 100 of https://id.gs1.org/01/04012345123456/10/998877" in str(refused.value)


def test_document_with_one_unmappable_event_records_nothing(ledger_env: Ledger) -> None:
    unknown_party = ship_lot("urn:epc:id:pgln:9999999.00001", 10, event_id="urn:uuid:bad-party")
    doc = document(commission_lot(), unknown_party)
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "maker", doc)
    ((key, reason),) = refused.value.problems
    assert key == "urn:uuid:bad-party" and "not in the party directory" in reason
    assert ledger_env.counts()["attestations"] == 0


def test_wrong_check_digit_is_refused_with_a_reason_that_says_so(ledger_env: Ledger) -> None:
    bad = commission_lot()
    bad["quantityList"] = [{"epcClass": "https://id.gs1.org/01/04012345123457/10/998877", "quantity": 5}]
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "maker", document(bad))
    assert "check digit" in str(refused.value) and bad["eventID"] in str(refused.value)
    assert ledger_env.counts()["attestations"] == 0


@pytest.mark.parametrize(
    "broken, expected",
    [
        ([], "expected a JSON object"),
        ({"type": "EPCISQueryDocument", "schemaVersion": "2.0"}, "type must be EPCISDocument"),
        ({"type": "EPCISDocument", "schemaVersion": "1.2", "epcisBody": {"eventList": []}}, "schemaVersion"),
        ({"type": "EPCISDocument", "schemaVersion": "2.0", "epcisBody": {"eventList": []}}, "non-empty"),
        (document({"type": "ObjectEvent", "eventTime": "yesterday", "eventTimeZoneOffset": "+01:00"}), "ISO 8601"),
        (document({"type": "ObjectEvent", "eventTime": "2026-01-10T09:00:00Z"}), "eventTimeZoneOffset is required"),
        (document({"type": "SensorEvent", "eventTime": "2026-01-10T09:00:00Z"}), "type must be one of"),
    ],
)
def test_malformed_documents_are_refused_with_reasons(ledger_env: Ledger, broken: object, expected: str) -> None:
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "maker", broken)  # type: ignore[arg-type]
    assert refused.value.problems[0][0] == "document" and expected in refused.value.problems[0][1]


# ----------------------------------------------------------- GS1's example documents


def test_gs1_transformation_example_becomes_a_production_and_round_trips(ledger_env: Ledger) -> None:
    doc = gs1_example("Example_9.6.4-TransformationEvent.jsonld")
    (uid,) = run_import(ledger_env, "maker", doc)
    record = ledger_env.get_attestation(uid)
    assert record is not None and record["kind"] == "PRODUCTION"
    fields = record["payload"]["fields"]
    assert fields["lot"]["value"] == canonical("urn:epc:idpat:sgtin:4012345.077889.*")
    assert fields["quantity"]["value"] == 4 and fields["goodsClass"]["value"] == "210690"
    exported = export_lot(ledger_env, "urn:epc:idpat:sgtin:4012345.077889.*")
    valid_epcis(exported)
    (ev,) = exported["epcisBody"]["eventList"]
    assert core(ev) == doc["epcisBody"]["eventList"][0]  # inputs, outputs, quantities, ilmd kept
    assert ev["prov:attestations"][0]["uid"] == uid


def test_gs1_receiving_example_accepts_the_hand_over_and_round_trips(ledger_env: Ledger) -> None:
    # GS1 9.6.2: 200 KGM of lot 998877 received for owning party 0614141.00001.0 (our importer).
    run_import(ledger_env, "maker", document(commission_lot(200)))
    run_import(ledger_env, "maker", document(ship_lot("urn:epc:id:sgln:0614141.00001.0", 200)))
    doc = gs1_example("Example_9.6.2-ObjectEvent.jsonld")
    (uid,) = run_import(ledger_env, "importer", doc)
    assert ledger_env.get_attestation(uid)["kind"] == "TRANSFER_ACCEPTANCE"  # type: ignore[index]
    exported = export_lot(ledger_env, "urn:epc:class:lgtin:4012345.012345.998877")
    valid_epcis(exported)
    assert [core(e) for e in exported["epcisBody"]["eventList"]][-1] == doc["epcisBody"]["eventList"][0]


def test_gs1_aggregation_example_accepts_a_packed_logistic_unit(ledger_env: Ledger) -> None:
    # GS1 9.6.3 receives SSCC 0614141.1234567890: the maker commissions two items, packs
    # them into that SSCC and ships it to the importer first.
    items = ["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2018"]
    sscc = "urn:epc:id:sscc:0614141.1234567890"
    commission = event("ObjectEvent", "urn:uuid:agg-1", action="ADD", bizStep="commissioning", epcList=items)
    pack = event("AggregationEvent", "urn:uuid:agg-2", action="ADD", bizStep="packing", parentID=sscc, childEPCs=items)
    ship = event(
        "AggregationEvent",
        "urn:uuid:agg-3",
        action="OBSERVE",
        bizStep="shipping",
        parentID=sscc,
        childEPCs=items,
        destinationList=[{"type": "owning_party", "destination": BUYER_PGLN}],
    )
    run_import(ledger_env, "maker", document(commission, pack, ship))
    doc = gs1_example("Example_9.6.3-AggregationEvent.jsonld")
    (uid,) = run_import(ledger_env, "importer", doc)
    assert ledger_env.get_attestation(uid)["kind"] == "TRANSFER_ACCEPTANCE"  # type: ignore[index]
    exported = export_lot(ledger_env, sscc)
    valid_epcis(exported)
    assert [e["eventID"] for e in exported["epcisBody"]["eventList"]] == [
        "urn:uuid:agg-2",
        "urn:uuid:agg-3",
        doc["epcisBody"]["eventList"][0]["eventID"],
    ]


def test_gs1_object_example_without_a_recipient_is_recorded_as_observations(ledger_env: Ledger) -> None:
    # GS1 9.6.1: a shipping read and a receiving read of two items; no party is named, so
    # nobody's custody changes. Recorded as what they are: observations, moving nothing.
    doc = gs1_example("Example_9.6.1-ObjectEvent.jsonld")
    uids = run_import(ledger_env, "exporter", doc)
    records = [ledger_env.get_attestation(u) for u in uids]
    assert [r["kind"] for r in records] == ["OBSERVATION", "OBSERVATION"]  # type: ignore[index]
    lot = canonical("urn:epc:idpat:sgtin:0614141.107346.*")
    first = records[0]["payload"]["fields"]  # type: ignore[index]
    assert first["lot"]["value"] == lot and first["quantity"]["value"] == 2 and first["unit"]["value"] == "EA"
    assert first["eventType"]["value"] == "ObjectEvent" and first["bizStep"]["value"] == "shipping"
    assert first["eventTime"]["value"] == 1112582011  # 2005-04-03T20:33:31.116-06:00
    assert first["epcisEvent"]["value"]["bizTransactionList"] == doc["epcisBody"]["eventList"][0]["bizTransactionList"]
    exported = export_lot(ledger_env, lot)
    valid_epcis(exported)
    assert [core(e) for e in exported["epcisBody"]["eventList"]] == doc["epcisBody"]["eventList"]
    assert [a["uid"] for e in exported["epcisBody"]["eventList"] for a in e["prov:attestations"]] == uids
    assert run_import(ledger_env, "exporter", doc) == [] and ledger_env.counts()["attestations"] == 2


def test_a_receipt_observed_before_its_hand_over_becomes_the_acceptance_on_reimport(ledger_env: Ledger) -> None:
    # The importer's feed (GS1 9.6.1) arrives before the maker's hand-over of item 2018:
    # its receipt is an Observation. Once the hand-over is on the ledger, importing the same
    # document again records the acceptance, and only that; a third import records nothing.
    doc = gs1_example("Example_9.6.1-ObjectEvent.jsonld")
    observed = run_import(ledger_env, "importer", doc)
    item = "urn:epc:id:sgtin:0614141.107346.2018"
    made = event("ObjectEvent", "urn:uuid:m-1", action="ADD", bizStep="commissioning", epcList=[item])
    importer = [{"type": "owning_party", "destination": "urn:epc:id:sgln:0614141.00001.0"}]
    handed = event(
        "ObjectEvent", "urn:uuid:m-2", action="OBSERVE", bizStep="shipping", epcList=[item], destinationList=importer
    )
    _, transfer = run_import(ledger_env, "maker", document(made, handed))
    (accepted,) = run_import(ledger_env, "importer", doc)
    record = ledger_env.get_attestation(accepted)
    assert record is not None and record["kind"] == "TRANSFER_ACCEPTANCE"
    assert record["typedData"]["message"]["refs"] == [transfer]
    assert record["payload"]["fields"]["epcisEventKey"]["value"] == doc["epcisBody"]["eventList"][1]["eventID"]
    assert run_import(ledger_env, "importer", doc) == []
    assert ledger_env.counts()["attestations"] == len(observed) + 3


def test_gs1_transaction_examples_on_non_goods_are_recorded_as_observations(ledger_env: Ledger) -> None:
    # A patient's service relation (GSRN) and a train (GIAI): no goods the ledger holds and no
    # recipient party. The events carry no eventID, so the GS1 event hash names them.
    doc = gs1_example("Example-TransactionEvents-2020_07_03y.jsonld")
    uids = run_import(ledger_env, "exporter", doc)
    assert len(uids) == 2
    for uid, original in zip(uids, doc["epcisBody"]["eventList"], strict=True):
        record = ledger_env.get_attestation(uid)
        assert record is not None and record["kind"] == "OBSERVATION"
        fields = record["payload"]["fields"]
        assert fields["epcisEventKey"]["value"].startswith("ni:///sha-256;") and "lot" not in fields
        assert fields["epcisEvent"]["value"] == original  # the train's vehicles, the discharge, as given
    assert run_import(ledger_env, "exporter", doc) == []


def test_a_shipping_event_naming_an_unknown_recipient_is_still_refused(ledger_env: Ledger) -> None:
    # It claims a hand-over to a party the ledger cannot tie to a key: refused, not observed.
    doc = gs1_example("Example_9.6.1-ObjectEvent.jsonld")
    shipping = doc["epcisBody"]["eventList"][0]
    shipping["destinationList"] = [{"type": "owning_party", "destination": "urn:epc:id:pgln:9999999.00001"}]
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "exporter", doc)
    ((key, reason),) = refused.value.problems
    assert key == shipping["eventID"] and "not in the party directory" in reason
    assert ledger_env.counts()["attestations"] == 0


def test_a_receiving_event_naming_a_sender_without_a_hand_over_is_refused(ledger_env: Ledger) -> None:
    # GS1 9.6.2 names its source party: it claims custody came from someone. With no
    # hand-over on the ledger to accept, that claim cannot be checked: refused.
    doc = gs1_example("Example_9.6.2-ObjectEvent.jsonld")
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "importer", doc)
    ((key, reason),) = refused.value.problems
    assert key == doc["epcisBody"]["eventList"][0]["eventID"] and "awaits acceptance" in reason
    assert ledger_env.counts()["attestations"] == 0


def test_an_observation_with_a_wrong_check_digit_is_refused(ledger_env: Ledger) -> None:
    doc = gs1_example("Example_9.6.1-ObjectEvent.jsonld")
    doc["epcisBody"]["eventList"][1]["epcList"] = ["https://id.gs1.org/01/00614141073460/21/2018"]
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "exporter", doc)
    assert "check digit" in str(refused.value) and ledger_env.counts()["attestations"] == 0


def test_goods_destroyed_is_refused_not_observed(ledger_env: Ledger) -> None:
    # DELETE in an ObjectEvent says the goods ceased to exist: the ledger has no record of
    # that and will not pretend it is a mere observation.
    gone = event("ObjectEvent", "urn:uuid:gone", action="DELETE", bizStep="destroying", epcList=[
        "urn:epc:id:sgtin:0614141.107346.2017"
    ])  # fmt: skip
    with pytest.raises(ImportRefused) as refused:
        run_import(ledger_env, "exporter", document(gone))
    assert refused.value.problems[0][0] == "urn:uuid:gone" and "no mapping" in refused.value.problems[0][1]


@pytest.mark.parametrize(
    "name",
    [
        "Example_9.6.1-ObjectEvent.jsonld",
        "Example_9.6.2-ObjectEvent.jsonld",
        "Example_9.6.3-AggregationEvent.jsonld",
        "Example_9.6.4-TransformationEvent.jsonld",
        "Example-TransactionEvents-2020_07_03y.jsonld",
    ],
)
def test_gs1_examples_are_valid_against_gs1_schema_as_read(name: str) -> None:
    # The schema and examples agree, so validating exports against this schema means something.
    valid_epcis(gs1_example(name))


def test_export_schema_check_catches_a_broken_event() -> None:
    doc = gs1_example("Example_9.6.4-TransformationEvent.jsonld")
    broken = copy.deepcopy(doc)
    del broken["epcisBody"]["eventList"][0]["eventTime"]
    with pytest.raises(jsonschema.ValidationError):
        valid_epcis(broken)


def test_over_http_the_server_maps_the_participant_signs_and_customs_exports(ledger_env: Ledger) -> None:
    from ledger.epcis.importer import ImportPlan

    from .test_api import Server

    server = Server(ledger_env)
    try:
        doc = document(commission_lot(300))
        answer = server.http.post(
            "/v1/epcis/map",
            json={
                "document": doc,
                "signer": actor("maker").address,
                "goodsClasses": {"urn:epc:idpat:sgtin:4012345.012345.*": "090111"},
            },
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        plan = ImportPlan.from_json(body)
        signed = sign_plan(plan, actor("maker"), ledger_env.domain, issued_at=signing_time(ledger_env))
        stored = server.http.post("/v1/epcis/import", json=signed)
        assert stored.status_code == 201 and stored.json()["created"] == 1
        forged = copy.deepcopy(signed)
        forged[0]["signature"] = forged[0]["signature"][:-4] + "0000"
        assert server.http.post("/v1/epcis/import", json=forged).status_code == 422
        refused = server.http.post("/v1/epcis/map", json={"document": {"type": "x"}, "signer": actor("maker").address})
        assert refused.status_code == 422 and "EPCISDocument" in refused.json()["detail"]
        exported = server.http.get(
            "/v1/lots/urn:epc:class:lgtin:4012345.012345.998877/epcis",
            headers={"Authorization": f"Bearer {server.customs}"},
        )
        assert exported.status_code == 200
        valid_epcis(exported.json())
        assert exported.json()["epcisBody"]["eventList"][0]["eventID"] == doc["epcisBody"]["eventList"][0]["eventID"]
    finally:
        server.stop()
