"""Attestations written as an EPCIS 2.0 document, one event per recorded event.

Promises:
- An attestation imported from EPCIS is written back as the event it came from (same
  eventID, time, offset, what, where, why, quantities, extensions); several attestations
  of one event (one per class of goods) make one event.
- An attestation recorded natively is written as the event of its rule in the one
  mapping table (`mapping.rule_for_native`), so a partner's repository gets the whole
  custody history, not only the part that came from EPCIS. Kinds the table does not
  export (IP assets, licences, revocations, findings, watch lists) are left out: they are
  not supply-chain events.
- Every event carries, in `prov:attestations`, the UID, attester and anchoring of each
  attestation it came from, so it can be traced back to the chain.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import select

from ..gs1 import GS1KeyError, canonical
from ..kinds import Kind
from ..store.models import AttestationRefRow, AttestationRow
from .mapping import Rule, rule_for_native

if TYPE_CHECKING:
    from ..core import Ledger

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
PROV_NAMESPACE = "https://provenance-ledger.example/ns/epcis#"
NATIVE_EVENT_ID = "urn:x-provenance:attestation:"
NATIVE_LOT = "urn:x-provenance:lot:"
NATIVE_SHIPMENT = "urn:x-provenance:shipment:"
_UOM = re.compile(r"[A-Z0-9]{2,3}")  # UN/ECE Rec. 20 codes, as GS1's schema allows them
CUSTODY_INPUTS = (int(Kind.PRODUCTION), int(Kind.TRANSFER), int(Kind.TRANSFER_ACCEPTANCE))


def export_document(ledger: Ledger, uids: list[str]) -> dict[str, Any]:
    """The EPCIS 2.0 document of the attestations `uids`, events in signing order."""
    events: dict[str, dict[str, Any]] = {}
    order: dict[str, tuple[int, int]] = {}
    contexts: list[Any] = [EPCIS_CONTEXT]
    with ledger.sessions() as session:
        rows = list(session.scalars(select(AttestationRow).where(AttestationRow.uid.in_(uids)))) if uids else []
        refs: dict[str, list[str]] = {r.uid: [] for r in rows}
        if rows:
            for ref in session.scalars(
                select(AttestationRefRow)
                .where(AttestationRefRow.uid.in_(list(refs)))
                .order_by(AttestationRefRow.uid, AttestationRefRow.position)
            ):
                refs[ref.uid].append(ref.ref)
        targets = {u for rs in refs.values() for u in rs}
        ref_rows = {r.uid: r for r in session.scalars(select(AttestationRow).where(AttestationRow.uid.in_(targets)))}
        # An acceptance stands for the hand-over it accepts: one level further, for its goods.
        accepted = {
            ref.uid: ref.ref
            for ref in session.scalars(
                select(AttestationRefRow).where(
                    AttestationRefRow.uid.in_(
                        [u for u, r in ref_rows.items() if r.kind == int(Kind.TRANSFER_ACCEPTANCE)]
                    ),
                    AttestationRefRow.position == 0,
                )
            )
        }
        handed = {
            r.uid: r for r in session.scalars(select(AttestationRow).where(AttestationRow.uid.in_(accepted.values())))
        }
        goods_of = {u: handed[t] for u, t in accepted.items() if t in handed}
    batches = ledger.batches_by_id({r.batch_id for r in rows if r.batch_id is not None})
    for row in sorted(rows, key=lambda r: (r.issued_at, r.id)):
        fields = _fields(row)
        key = fields.get("epcisEventKey")
        if isinstance(key, str) and isinstance(fields.get("epcisEvent"), dict):
            event = events.get(key)
            if event is None:
                event = dict(fields["epcisEvent"])
                event.setdefault("eventID", fields.get("epcisEventHash", key))
                events[key] = event
        else:
            native = _native_event(ledger, row, fields, refs[row.uid], ref_rows, goods_of)
            if native is None:
                continue  # not a supply-chain event (a licence, a finding, ...)
            key = native["eventID"]
            event = events.setdefault(key, native)
        order.setdefault(key, (row.issued_at, row.id))
        anchor = ledger.anchor_from(row.uid, row.batch_id, row.direct_tx, batches.get(row.batch_id or -1))
        event.setdefault("prov:attestations", []).append(
            {"uid": row.uid, "attester": row.attester, "anchor": anchor.to_json()}
        )
        for item in _as_list(fields.get("epcisContext")):
            if item not in contexts:
                contexts.append(item)
    return {
        "@context": [*contexts, {"prov": PROV_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(datetime.now(UTC)),
        "epcisBody": {"eventList": [events[k] for k in sorted(events, key=lambda k: order[k])]},
    }


def _native_event(
    ledger: Ledger,
    row: AttestationRow,
    fields: dict[str, Any],
    refs: list[str],
    targets: dict[str, AttestationRow],
    goods_of: dict[str, AttestationRow],
) -> dict[str, Any] | None:
    """The event of a natively recorded attestation (None: not a supply-chain event).
    `targets` are the rows it references; `goods_of` maps an acceptance to the hand-over
    it accepts (whose goods it takes)."""
    kind = Kind(row.kind)
    from_inputs = any(targets[u].kind in CUSTODY_INPUTS for u in refs if u in targets)
    rule = rule_for_native(kind, from_inputs)
    if rule is None or rule.native is None:
        return None
    action, biz_step = rule.native
    if kind is Kind.OBSERVATION and isinstance(fields.get("bizStep"), str):
        biz_step = fields["bizStep"]
    event: dict[str, Any] = {
        "type": rule.event_type,
        "eventID": NATIVE_EVENT_ID + row.uid,
        "eventTime": _time(datetime.fromtimestamp(row.issued_at, UTC)),
        "eventTimeZoneOffset": "+00:00",
    }
    if action is not None:
        event["action"] = action
    if biz_step is not None:
        event["bizStep"] = biz_step
    goods = dict(fields)
    if kind is Kind.TRANSFER_ACCEPTANCE and refs and refs[0] in targets:
        goods = _fields(targets[refs[0]])  # what is accepted: the hand-over's goods
    elif "lot" not in goods:  # a shipment need not name its lot: the goods it rests on do
        for u in refs:
            source = goods_of.get(u) or targets.get(u)
            lot = _fields(source).get("lot") if source is not None else None
            if isinstance(lot, str):
                goods["lot"] = lot
                break
    _what(event, rule, goods)
    party = _party(ledger, row.attester)
    if kind is Kind.TRANSFER and isinstance(fields.get("to"), str):
        event["sourceList"] = [{"type": "possessing_party", "source": party}]
        event["destinationList"] = [{"type": "possessing_party", "destination": _party(ledger, fields["to"])}]
    if kind is Kind.SHIPMENT:
        shipment_id = fields.get("shipmentId")
        reference = quote(str(shipment_id), safe="") if isinstance(shipment_id, str) else row.uid
        event["bizTransactionList"] = [{"bizTransaction": NATIVE_SHIPMENT + reference}]
        event["sourceList"] = [{"type": "owning_party", "source": party}]
    for name in ("goodsClass", "destination"):
        if isinstance(fields.get(name), str):
            event[f"prov:{name}"] = fields[name]
    if refs:
        event["prov:refs"] = refs
    return event


def _what(event: dict[str, Any], rule: Rule, fields: dict[str, Any]) -> None:
    """The goods of a native record as the event's quantity list (a unit GS1's schema
    does not allow as uom is kept beside it as `prov:unit`)."""
    lot = fields.get("lot")
    if not isinstance(lot, str):
        if rule.event_type == "TransactionEvent":
            event["epcList"] = []  # goods unknown here: GS1's schema wants a list, even empty
        return
    element: dict[str, Any] = {"epcClass": lot_uri(lot)}
    if isinstance(fields.get("quantity"), int | float) and not isinstance(fields.get("quantity"), bool):
        element["quantity"] = fields["quantity"]
    unit = fields.get("unit")
    if isinstance(unit, str) and _UOM.fullmatch(unit):
        element["uom"] = unit
    elif isinstance(unit, str):
        event["prov:unit"] = unit
    name = "outputQuantityList" if rule.event_type == "TransformationEvent" else "quantityList"
    event[name] = [element]


def lot_uri(lot: str) -> str:
    """A lot as a URI: its canonical GS1 Digital Link URI, or a ledger URN when it is not a GS1 key."""
    try:
        return canonical(lot)
    except GS1KeyError:
        return NATIVE_LOT + quote(lot, safe="")


def _party(ledger: Ledger, address: str) -> str:
    """A signing key as a URI (a did:pkh account, CAIP-10)."""
    return f"did:pkh:eip155:{ledger.domain.chain_id}:{address.lower()}"


def _fields(row: AttestationRow) -> dict[str, Any]:
    return {k: v["value"] for k, v in json.loads(row.disclosed).items()}


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
