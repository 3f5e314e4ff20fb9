"""EPCIS beyond the import: native custody exported as EPCIS 2.0, an Observation weighed as
evidence only by customs, and the repeat-import lookup kept in its own index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger.core import Ledger
from ledger.epcis.exporter import NATIVE_EVENT_ID
from ledger.epcis.keys import key_hash
from ledger.epcis.ledger_index import StoreIndex
from ledger.epcis.service import export_shipment
from ledger.kinds import Kind
from ledger.reasons import Reason
from ledger.store.models import EpcisEventRow
from ledger.verify.model import Verdict

from .scenario import Story, actor
from .test_epcis import commission_lot, document, run_import, ship_lot, valid_epcis


def observation(story: Story, who: str, refs: list[str], **extra: Any) -> str:
    fields = {"eventType": "ObjectEvent", "eventTime": story.t, "lot": "LOT-1", "quantity": 1000, "unit": "pcs"}
    return story.sign(who, Kind.OBSERVATION, fields | extra, "lot:LOT-1", refs)


def test_natively_recorded_custody_is_exported_as_valid_epcis_traced_to_the_chain(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    exported = export_shipment(ledger_env, ids["shipment"])
    valid_epcis(exported)
    events = exported["epcisBody"]["eventList"]
    # The custody story behind the shipment, in signing order; licences, assets and the
    # hand-over to the importer (not behind this shipment) are not supply-chain events of it.
    expected = ["made", "to_carrier", "carrier_ok", "to_exporter", "exporter_ok", "shipment"]
    assert [e["prov:attestations"][0]["uid"] for e in events] == [ids[n] for n in expected]
    assert [(e["type"], e.get("action"), e.get("bizStep")) for e in events] == [
        ("ObjectEvent", "ADD", "commissioning"),
        ("ObjectEvent", "OBSERVE", "shipping"),
        ("ObjectEvent", "OBSERVE", "receiving"),
        ("ObjectEvent", "OBSERVE", "shipping"),
        ("ObjectEvent", "OBSERVE", "receiving"),
        ("TransactionEvent", "ADD", "shipping"),
    ]
    for ev in events:
        (attestation,) = ev["prov:attestations"]
        assert ev["eventID"] == NATIVE_EVENT_ID + attestation["uid"]
        assert attestation["anchor"]["status"] == "anchored" and attestation["anchor"]["root"]
    made, to_carrier, carrier_ok = events[0], events[1], events[2]
    assert made["quantityList"] == [{"epcClass": "urn:x-provenance:lot:LOT-1", "quantity": 1000}]
    assert made["prov:unit"] == "pcs" and made["prov:goodsClass"] == "841370"
    chain = ledger_env.domain.chain_id
    assert to_carrier["destinationList"] == [
        {"type": "possessing_party", "destination": f"did:pkh:eip155:{chain}:{actor('carrier').address.lower()}"}
    ]
    assert carrier_ok["quantityList"] == to_carrier["quantityList"]  # what was accepted: the hand-over's goods
    assert events[-1]["prov:destination"] == "FR" and events[-1]["bizTransactionList"]


def test_a_lot_recorded_partly_in_epcis_and_partly_natively_exports_its_whole_history(ledger_env: Ledger) -> None:
    made, shipped = run_import(
        ledger_env, "maker", document(commission_lot(), ship_lot("urn:epc:id:pgln:0614141.00001", 1000))
    )
    story = Story(ledger_env)
    taken = story.accept(shipped, "exporter")  # the exporter's own system speaks no EPCIS
    shipment = story.ship([taken], 1000, goods="090111")
    exported = export_shipment(ledger_env, shipment)
    valid_epcis(exported)
    uids = [a["uid"] for e in exported["epcisBody"]["eventList"] for a in e["prov:attestations"]]
    assert uids == [made, shipped, taken, shipment]
    ids = [e["eventID"] for e in exported["epcisBody"]["eventList"]]
    assert ids[:2] == [commission_lot()["eventID"], "urn:uuid:0b0e0c1a-0000-4000-8000-000000000002"]
    assert ids[2:] == [NATIVE_EVENT_ID + taken, NATIVE_EVENT_ID + shipment]


def test_an_observation_never_moves_custody_in_a_verdict(ledger_env: Ledger) -> None:
    # The maker, holding the lot, records an observation of all 1000 going to the importer.
    # Were it counted as custody, the lot would be handed on twice (a fork); it is evidence
    # only, so the real hand-overs still verify and the observation consumes nothing.
    story = Story(ledger_env)
    ids = story.clean_export()
    observation(story, "maker", [ids["made"]], bizStep="shipping", to=actor("importer").address)
    story.anchor()
    result = ledger_env.verify_shipment(ids["shipment"])
    assert result.verdict is Verdict.VERIFIED, [f.message for c in result.checks for f in c.findings]


def test_a_shipment_resting_on_an_observation_has_no_custody(ledger_env: Ledger) -> None:
    # The exporter observes goods it never received and ships from that observation: the
    # observation is not custody, so the shipment names no goods it took over.
    story = Story(ledger_env)
    ids = story.clean_export()
    seen = observation(story, "exporter", [ids["made"]])
    shipment = story.ship([seen], 1000)
    story.anchor()
    result = ledger_env.verify_shipment(shipment)
    assert result.verdict is not Verdict.VERIFIED
    reasons = {f.code for c in result.checks for f in c.findings}
    assert Reason.CUSTODY_GAP in reasons, reasons


def test_the_repeat_import_lookup_reads_its_index_per_signer(ledger_env: Ledger) -> None:
    doc = document(commission_lot())
    (made,) = run_import(ledger_env, "maker", doc)
    event_id = commission_lot()["eventID"]
    with ledger_env.sessions() as session:
        rows = list(session.scalars(select(EpcisEventRow).where(EpcisEventRow.uid == made)))
    assert {r.attester for r in rows} == {actor("maker").address.lower()} and len(rows) == 2  # eventID and GS1 hash
    assert key_hash(event_id) in {r.key_hash for r in rows}
    index = StoreIndex(ledger_env.sessions)
    assert index.recorded(event_id, actor("maker").address) == [made]
    # The same event told by someone else is theirs to record: not "already recorded" for them.
    assert index.recorded(event_id, actor("exporter").address) == []


def test_migration_0008_indexes_events_recorded_before_it(ledger_env: Ledger) -> None:
    # Attestations stored before the index existed: dropping it (downgrade to 0007) and
    # migrating again rebuilds it from the stored attestations, so a repeat import of an
    # old document still records nothing new.
    from alembic import command

    from ledger.store.db import alembic_config

    doc = document(commission_lot(), ship_lot("urn:epc:id:pgln:0614141.00001", 10))
    stored = run_import(ledger_env, "maker", doc)
    engine = ledger_env.engine
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    for target in ("0007", "head"):
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            (command.downgrade if target == "0007" else command.upgrade)(cfg, target)
    with ledger_env.sessions() as session:
        rows = list(session.scalars(select(EpcisEventRow)))
    assert sorted({r.uid for r in rows}) == sorted(stored) and len(rows) == 4  # eventID and GS1 hash of each
    assert run_import(ledger_env, "maker", doc) == [] and ledger_env.counts()["attestations"] == 2
