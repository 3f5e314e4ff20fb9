"""The mapping itself: each EPCIS event turned into planned attestations by its rule in
`mapping.RULES`, resting on custody the signer holds (on the ledger, or planned earlier in
the same document). Raises `Unmappable` with the reason; `importer.plan_import` collects
the reasons of every event and refuses the document as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..fields import exact_quantity, identifier
from ..gs1 import parse_key
from ..kinds import Kind
from .document import Event, event_time
from .mapping import CLAIMS_HAND_OVER, NAMES_RECIPIENT, Rule
from .plan import (
    COUNT_UNIT,
    PLANNED,
    CustodyIndex,
    CustodyRecord,
    ImportContext,
    Party,
    PlannedAttestation,
    Unmappable,
    gtin_of,
)

# Source / destination types that say who owns or holds the goods (CBV 2.0, SDT-): a
# list naming one of these states a change of ownership or custody.
PARTY_TYPES = ("owning_party", "possessing_party")
# EPC schemes naming goods the ledger can hold (items and classes of trade items, logistic
# units); other GS1 keys (places, assets, service relations, documents) name no goods.
GOODS_SCHEMES = frozenset({"sgtin", "lgtin", "gtin", "sscc"})


def short_biz_step(biz_step: object) -> str | None:
    """CBV business steps may be spelt bare or as URIs (`https://ref.gs1.org/cbv/BizStep-shipping`)."""
    if not isinstance(biz_step, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:"):
        if biz_step.startswith(prefix):
            return biz_step[len(prefix) :]
    return biz_step


@dataclass
class _Goods:
    lot: str
    unit: str
    quantity: Fraction = Fraction(0)
    epcs: list[str] = field(default_factory=list)


def _goods(
    event: dict[str, Any], epc_field: str, quantity_field: str, schemes: frozenset[str] | None = None
) -> list[_Goods]:
    """The goods an event names, grouped by class and unit, in first-seen order. With
    `schemes`, keys of other schemes are read (and checked) but not returned."""
    groups: dict[tuple[str, str], _Goods] = {}
    epcs = event.get(epc_field) or []
    quantities = event.get(quantity_field) or []
    if not isinstance(epcs, list) or not isinstance(quantities, list):
        raise Unmappable(f"{epc_field} and {quantity_field} must be lists")
    for epc in epcs:
        key = parse_key(epc)
        if schemes is not None and key.scheme not in schemes:
            continue
        group = groups.setdefault((key.class_key, COUNT_UNIT), _Goods(key.class_key, COUNT_UNIT))
        group.quantity += 1
        group.epcs.append(key.canonical)
    for entry in quantities:
        if not isinstance(entry, dict) or "epcClass" not in entry:
            raise Unmappable(f"{quantity_field} entries need an epcClass")
        key = parse_key(entry["epcClass"])
        if schemes is not None and key.scheme not in schemes:
            continue
        amount = exact_quantity(entry.get("quantity"))
        if amount is None:
            raise Unmappable(
                f"quantity {entry.get('quantity')!r} of {entry['epcClass']} is not an exact positive quantity"
            )
        unit = str(entry.get("uom") or COUNT_UNIT)
        group = groups.setdefault((key.class_key, unit), _Goods(key.class_key, unit))
        group.quantity += amount
    for group in groups.values():
        identifier("lot", group.lot)
        identifier("unit", group.unit)
    return list(groups.values())


def _number(value: Fraction) -> int | float:
    return value.numerator if value.denominator == 1 else float(value)


class Planner:
    def __init__(self, signer: str, context: ImportContext, index: CustodyIndex, json_context: object) -> None:
        self.signer = signer
        self.context = context
        self.index = index
        self.json_context = json_context
        self.items: list[PlannedAttestation] = []
        self.records: dict[str, list[CustodyRecord]] = {}
        self.planned: list[CustodyRecord] = []

    # ---- the ledger's custody, stored and planned

    def _records(self, lot: str) -> list[CustodyRecord]:
        if lot not in self.records:
            self.records[lot] = self.index.lot_records(lot)
        return self.records[lot] + [
            r for r in self.planned if r.lot == lot or any(self._lot_of(x) == lot for x in r.refs)
        ]

    def _lot_of(self, uid: str) -> str | None:
        for records in self.records.values():
            for r in records:
                if r.uid == uid:
                    return r.lot
        return next((r.lot for r in self.planned if r.uid == uid), None)

    def _remaining(self, lot: str) -> list[tuple[CustodyRecord, Fraction]]:
        """Custody records of `lot` the signer holds, with what is left of each, oldest first."""
        records = self._records(lot)
        by_uid = {r.uid: r for r in records}
        left = {r.uid: r.quantity for r in records if r.kind in (Kind.PRODUCTION, Kind.TRANSFER) and r.lot == lot}
        for consumer in records:
            if consumer.kind not in (Kind.TRANSFER, Kind.SHIPMENT, Kind.PRODUCTION):
                continue
            need = consumer.quantity
            for ref in consumer.refs:
                target = by_uid.get(ref)
                if target is not None and target.kind is Kind.TRANSFER_ACCEPTANCE:
                    ref = target.refs[0] if target.refs else ref
                if ref in left and by_uid[ref].holder_after == consumer.attester.lower():
                    take = (
                        left[ref] if consumer.kind is Kind.PRODUCTION and consumer.lot != lot else min(need, left[ref])
                    )
                    left[ref] -= take
                    need -= take
        return [(by_uid[u], q) for u, q in left.items() if q > 0 and by_uid[u].holder_after == self.signer]

    def _take(self, lot: str, quantity: Fraction, *, partial: bool = False) -> list[str]:
        refs: list[str] = []
        needed = quantity
        for record, left in self._remaining(lot):
            if needed <= 0:
                break
            refs.append(record.uid)
            needed -= min(needed, left)
        if needed > 0 and not partial:
            held = quantity - needed
            raise Unmappable(
                f"the signer holds {_number(held)} of {lot} on the ledger, the event moves {_number(quantity)}"
            )
        return refs

    def _open_transfer(self, lot: str) -> CustodyRecord:
        record = self._awaiting(lot)
        if record is None:
            raise Unmappable(f"no hand-over of {lot} to the signer awaits acceptance on the ledger")
        return record

    def _awaiting(self, lot: str) -> CustodyRecord | None:
        """The oldest hand-over of `lot` to the signer not yet accepted by it, if any."""
        records = self._records(lot)
        accepted = {
            ref
            for r in records
            if r.kind is Kind.TRANSFER_ACCEPTANCE and r.attester.lower() == self.signer
            for ref in r.refs
        }
        for record in records:
            mine = record.kind is Kind.TRANSFER and record.lot == lot and record.holder_after == self.signer
            if mine and record.uid not in accepted:
                return record
        return None

    # ---- building attestations

    def _add(
        self,
        event: Event,
        rule: Rule,
        kind: Kind,
        lot: str | None,
        fields: dict[str, Any],
        refs: list[str],
        quantity: Fraction,
        epcs: list[str],
        to: str | None = None,
    ) -> None:
        fields = dict(fields)
        fields["epcisEventKey"] = event.key
        fields["epcisEventHash"] = event.event_hash
        fields["epcisEvent"] = event.body
        if self.json_context is not None:
            fields["epcisContext"] = self.json_context
        if epcs:
            fields["epcs"] = epcs
        uid = f"{PLANNED}{len(self.items)}"
        # What names no lot (an observation of no goods) is about the event itself.
        subject = f"lot:{lot}" if lot is not None else f"epcis:{event.key}"
        self.items.append(PlannedAttestation(event.key, rule.name, kind, subject, fields, refs))
        self.planned.append(CustodyRecord(uid, kind, self.signer, lot, quantity, tuple(refs), to))

    def _goods_class(self, lot: str) -> str:
        gtin = gtin_of(lot)
        try:
            return self.context.goods_classes[gtin]
        except KeyError:
            raise Unmappable(f"no HS goods class is known for {gtin}; give one for this GTIN") from None

    def _party(self, event: dict[str, Any], list_name: str, entry_name: str) -> Party:
        """The owning party named in `list_name` (else the possessing party)."""
        entries = _party_entries(event, list_name)
        for wanted in PARTY_TYPES:
            for party_type, value in entries:
                if party_type == wanted:
                    key = parse_key(str(value))
                    party = self.context.parties.get(key.canonical)
                    if party is None:
                        raise Unmappable(f"the {list_name} {party_type} {key.canonical} is not in the party directory")
                    return party
        raise Unmappable(f"a hand-over needs an owning_party in {list_name}; the event names none")

    def condition(self, event: Event) -> Callable[[str], bool]:
        """Decides a rule's condition for `event`."""
        return lambda name: self.holds(event, name)

    def holds(self, event: Event, condition: str) -> bool:
        """Whether `event` meets a rule's condition (`mapping.CONDITIONS`)."""
        if condition == NAMES_RECIPIENT:
            return bool(_party_entries(event.body, "destinationList"))
        if condition == CLAIMS_HAND_OVER:
            if _party_entries(event.body, "sourceList"):
                return True
            if event.type == "AggregationEvent":
                goods = [self._unit(event)]
            else:
                goods = _goods(event.body, "epcList", "quantityList")
            return any(self._awaiting(g.lot) for g in goods)
        raise ValueError(f"unknown rule condition {condition!r}")

    def map(self, event: Event, rule: Rule) -> None:
        getattr(self, "_map_" + rule.name.replace("-", "_"))(event, rule)

    def _map_commission(self, event: Event, rule: Rule) -> None:
        for g in _goods(event.body, "epcList", "quantityList"):
            fields = {
                "lot": g.lot,
                "quantity": _number(g.quantity),
                "unit": g.unit,
                "goodsClass": self._goods_class(g.lot),
            }
            self._add(event, rule, Kind.PRODUCTION, g.lot, fields, [], g.quantity, g.epcs)

    def _map_ship(self, event: Event, rule: Rule, goods: list[_Goods] | None = None) -> None:
        party = self._party(event.body, "destinationList", "destination")
        for g in goods or _goods(event.body, "epcList", "quantityList"):
            refs = self._take(g.lot, g.quantity)
            fields = {"lot": g.lot, "quantity": _number(g.quantity), "unit": g.unit, "to": party.address}
            self._add(event, rule, Kind.TRANSFER, g.lot, fields, refs, g.quantity, g.epcs, party.address.lower())

    def _map_receive(self, event: Event, rule: Rule, goods: list[_Goods] | None = None) -> None:
        for g in goods or _goods(event.body, "epcList", "quantityList"):
            transfer = self._open_transfer(g.lot)
            self._add(
                event, rule, Kind.TRANSFER_ACCEPTANCE, g.lot, {"note": "received"}, [transfer.uid], Fraction(0), g.epcs
            )

    def _unit(self, event: Event) -> _Goods:
        parent = event.body.get("parentID")
        if not isinstance(parent, str):
            raise Unmappable("an AggregationEvent mapped to custody needs a parentID (the logistic unit)")
        key = parse_key(parent)
        identifier("lot", key.canonical)
        return _Goods(key.canonical, COUNT_UNIT, Fraction(1), [key.canonical])

    def _map_ship_unit(self, event: Event, rule: Rule) -> None:
        self._map_ship(event, rule, [self._unit(event)])

    def _map_receive_unit(self, event: Event, rule: Rule) -> None:
        self._map_receive(event, rule, [self._unit(event)])

    def _map_pack(self, event: Event, rule: Rule) -> None:
        unit = self._unit(event)
        children = _goods(event.body, "childEPCs", "childQuantityList")
        classes = {self._goods_class(g.lot) for g in children}
        if len(classes) != 1:
            raise Unmappable(
                f"a logistic unit holds goods of one HS class here; its children have {sorted(classes) or 'none'}"
            )
        refs = [r for g in children for r in self._take(g.lot, g.quantity)]
        fields = {"lot": unit.lot, "quantity": 1, "unit": COUNT_UNIT, "goodsClass": classes.pop()}
        self._add(event, rule, Kind.PRODUCTION, unit.lot, fields, refs, Fraction(1), unit.epcs)

    def _lot_fields(self, g: _Goods) -> dict[str, Any]:
        """A production's fields for goods `g` made (or unpacked) here."""
        return {"lot": g.lot, "quantity": _number(g.quantity), "unit": g.unit, "goodsClass": self._goods_class(g.lot)}

    def _map_unpack(self, event: Event, rule: Rule) -> None:
        unit = self._unit(event)
        refs = self._take(unit.lot, Fraction(1))
        for g in _goods(event.body, "childEPCs", "childQuantityList"):
            self._add(event, rule, Kind.PRODUCTION, g.lot, self._lot_fields(g), refs, g.quantity, g.epcs)

    def _map_transform(self, event: Event, rule: Rule) -> None:
        inputs = _goods(event.body, "inputEPCList", "inputQuantityList")
        outputs = _goods(event.body, "outputEPCList", "outputQuantityList")
        if not outputs:
            raise Unmappable("a TransformationEvent without outputs produces nothing to record")
        # Inputs the signer holds on the ledger are referenced (and used up); inputs never
        # recorded on the ledger are kept in the event as declared, without provenance.
        refs = [r for g in inputs for r in self._take(g.lot, g.quantity, partial=True)]
        for g in outputs:
            self._add(event, rule, Kind.PRODUCTION, g.lot, self._lot_fields(g), refs, g.quantity, g.epcs)

    def _map_transact(self, event: Event, rule: Rule) -> None:
        party = self._party(event.body, "destinationList", "destination")
        if party.country is None:
            raise Unmappable("the destination party has no country in the party directory")
        transactions = event.body.get("bizTransactionList") or []
        first = transactions[0].get("bizTransaction") if transactions and isinstance(transactions[0], dict) else None
        for g in _goods(event.body, "epcList", "quantityList"):
            refs = self._take(g.lot, g.quantity)
            fields: dict[str, Any] = {
                "quantity": _number(g.quantity),
                "unit": g.unit,
                "goodsClass": self._goods_class(g.lot),
                "destination": party.country,
                "lot": g.lot,
            }
            if isinstance(first, str):
                fields["bizTransaction"] = first
            self._add(event, rule, Kind.SHIPMENT, g.lot, fields, refs, g.quantity, g.epcs)

    def _map_observe(self, event: Event, rule: Rule) -> None:
        """One Observation per class of goods the event names, or one for the event when it
        names none the ledger can hold. Every key is still read (a wrong check digit is
        refused); nothing is referenced or used up."""
        body = event.body
        base: dict[str, Any] = {"eventType": event.type, "eventTime": int(event_time(body).timestamp())}
        if isinstance(body.get("bizStep"), str):
            base["bizStep"] = body["bizStep"]
        goods: list[_Goods] = []
        for epc_field, quantity_field in (
            ("epcList", "quantityList"),
            ("childEPCs", "childQuantityList"),
            ("inputEPCList", "inputQuantityList"),
            ("outputEPCList", "outputQuantityList"),
        ):
            goods += _goods(body, epc_field, quantity_field, schemes=GOODS_SCHEMES)
        parent = body.get("parentID")
        if isinstance(parent, str):
            key = parse_key(parent)
            if key.scheme in GOODS_SCHEMES:
                goods.insert(0, _Goods(key.class_key, COUNT_UNIT, Fraction(1), [key.canonical]))
        for g in goods:
            fields = dict(base, lot=g.lot, quantity=_number(g.quantity), unit=g.unit)
            self._add(event, rule, Kind.OBSERVATION, g.lot, fields, [], Fraction(0), g.epcs)
        if not goods:
            self._add(event, rule, Kind.OBSERVATION, None, dict(base), [], Fraction(0), [])

    _map_observe_unit = _map_observe
    _map_observe_transaction = _map_observe
    _map_observe_association = _map_observe


def _party_entries(event: dict[str, Any], list_name: str) -> list[tuple[str, object]]:
    """(type, party key) of the owning / possessing parties a source or destination list names."""
    entries = event.get(list_name) or []
    if not isinstance(entries, list):
        raise Unmappable(f"{list_name} must be a list")
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            party_type = _short_type(entry.get("type"))
            if party_type in PARTY_TYPES:
                out.append((party_type, entry.get(list_name.removesuffix("List"))))
    return out


def _short_type(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/SDT-", "urn:epcglobal:cbv:sdt:"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value
