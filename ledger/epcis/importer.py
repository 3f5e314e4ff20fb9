"""Mapping an EPCIS 2.0 document to the attestations its participant signs.

`plan_import` reads the document, picks each event's rule from `mapping.RULES`, resolves
what each attestation rests on (custody already on the ledger, or planned earlier in the
same document) and returns the unsigned plan; `sign_plan` signs it with the
participant's key. The server never needs the key: it can plan, the participant signs.

Promises:
- All or nothing: any event that cannot be mapped makes `plan_import` raise
  `ImportRefused`, listing every such event's key and reason; no plan, nothing signed.
- Idempotent: an event already recorded by this signer (same eventID, or same GS1 event
  hash) is not planned again; it is reported in `ImportPlan.already_recorded`.
- Identifiers are committed in their canonical GS1 form (`ledger.gs1`), so two spellings
  of the same goods are the same lot; a wrong check digit refuses the event.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from ..eip712 import Domain
from ..fields import FieldError, exact_quantity, identifier
from ..gs1 import GS1KeyError, parse_key
from ..kinds import Kind
from ..submission import build_submission
from .document import Event, event_time, read_document
from .mapping import CLAIMS_HAND_OVER, NAMES_RECIPIENT, Rule, rule_for

COUNT_UNIT = "EA"  # a quantity without uom counts instances (UN/ECE Rec. 20 "each")
PLANNED = "planned:"
# Source / destination types that say who owns or holds the goods (CBV 2.0, SDT-): a
# list naming one of these states a change of ownership or custody.
PARTY_TYPES = ("owning_party", "possessing_party")
# EPC schemes naming goods the ledger can hold (items and classes of trade items, logistic
# units); other GS1 keys (places, assets, service relations, documents) name no goods.
GOODS_SCHEMES = frozenset({"sgtin", "lgtin", "gtin", "sscc"})


@dataclass(frozen=True)
class Party:
    """A supply-chain party as the ledger knows it: its signing address, its country."""

    address: str
    country: str | None = None


@dataclass
class ImportContext:
    """What an EPCIS document does not say but the ledger needs: who the parties named by
    GS1 keys (PGLN / GLN / SGLN) are, and the HS goods class of each GTIN."""

    parties: dict[str, Party] = field(default_factory=dict)
    goods_classes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parties = {parse_key(k).canonical: v for k, v in self.parties.items()}
        self.goods_classes = {_gtin_of(parse_key(k).class_key): v for k, v in self.goods_classes.items()}


@dataclass(frozen=True)
class CustodyRecord:
    """A custody-relevant attestation as the planner sees it (stored or planned)."""

    uid: str
    kind: Kind
    attester: str
    lot: str | None
    quantity: Fraction
    refs: tuple[str, ...]
    to: str | None = None

    @property
    def holder_after(self) -> str:
        return (self.to if self.kind is Kind.TRANSFER and self.to else self.attester).lower()


class CustodyIndex(Protocol):
    """The ledger's records, as far as the planner needs them."""

    def lot_records(self, lot: str) -> list[CustodyRecord]:
        """Attestations about `lot` and those referencing them, oldest first."""
        ...

    def recorded(self, event_key: str, attester: str) -> list[str]:
        """UIDs of attestations by `attester` already recording the EPCIS event `event_key`."""
        ...


@dataclass
class PlannedAttestation:
    """One attestation to sign: `refs` hold UIDs or `planned:<n>` for earlier plan items."""

    event_key: str
    rule: str
    kind: Kind
    subject: str
    fields: dict[str, Any]
    refs: list[str]


@dataclass
class ImportPlan:
    signer: str
    items: list[PlannedAttestation]
    already_recorded: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "attestations": [
                {
                    "eventKey": p.event_key,
                    "rule": p.rule,
                    "kind": p.kind.type_name,
                    "subject": p.subject,
                    "fields": p.fields,
                    "refs": p.refs,
                }
                for p in self.items
            ],
            "alreadyRecorded": self.already_recorded,
        }


class ImportRefused(ValueError):
    """The document records nothing: `problems` lists (event key, reason) for each event
    that cannot be mapped (or one ("document", reason) when the document is malformed)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in problems))


class Unmappable(ValueError):
    """One event cannot be mapped; the message says why."""


def plan_import(document: object, signer: str, context: ImportContext, index: CustodyIndex) -> ImportPlan:
    """The attestations `signer` signs for `document` (see the module's promises)."""
    from .document import DocumentError

    try:
        header, events = read_document(document)
    except DocumentError as exc:
        raise ImportRefused([("document", str(exc))]) from None
    planner = _Planner(signer.lower(), context, index, header.get("@context"))
    problems: list[tuple[str, str]] = []
    already: dict[str, list[str]] = {}
    for event in events:
        done = index.recorded(event.key, signer) or index.recorded(event.event_hash, signer)
        if done:
            already[event.key] = done
            continue
        body = event.body
        try:
            rule = rule_for(event.type, body.get("action"), _short(body.get("bizStep")), planner.condition(event))
        except (Unmappable, GS1KeyError, FieldError) as exc:
            problems.append((event.key, f"{event.label}: {exc}"))
            continue
        if rule is None:
            problems.append(
                (
                    event.key,
                    f"{event.label}: no mapping for a {event.type} with action {body.get('action')} and "
                    f"bizStep {body.get('bizStep')} (see docs/epcis-mapping.md)",
                )
            )
            continue
        try:
            planner.map(event, rule)
        except (Unmappable, GS1KeyError, FieldError) as exc:
            problems.append((event.key, f"{event.label} ({rule.name} → {rule.kind.type_name}): {exc}"))
    if problems:
        raise ImportRefused(problems)
    return ImportPlan(signer, planner.items, already)


def sign_plan(
    plan: ImportPlan, account: LocalAccount, domain: Domain, *, issued_at: int | None = None
) -> list[dict[str, Any]]:
    """Sign every planned attestation in order (earlier ones' UIDs filled into later refs)."""
    if account.address.lower() != plan.signer.lower():
        raise ValueError(f"the plan is for {plan.signer}, not {account.address}")
    now = int(time.time()) if issued_at is None else issued_at
    uids: list[str] = []
    out = []
    for item in plan.items:
        refs = [uids[int(r[len(PLANNED) :])] if r.startswith(PLANNED) else r for r in item.refs]
        submission = build_submission(
            account, item.kind, domain, item.fields, subject=item.subject, refs=refs, issued_at=now
        )
        uids.append(str(submission["uid"]))
        out.append(submission)
    return out


# ------------------------------------------------------------------------ planning


def _short(biz_step: object) -> str | None:
    """CBV business steps may be spelt bare or as URIs (`https://ref.gs1.org/cbv/BizStep-shipping`)."""
    if not isinstance(biz_step, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:"):
        if biz_step.startswith(prefix):
            return biz_step[len(prefix) :]
    return biz_step


def _gtin_of(class_key: str) -> str:
    """The canonical GTIN URI of a class key (GTIN + lot → GTIN); other keys as they are."""
    parts = class_key.split("/")
    if len(parts) >= 5 and parts[3] == "01":
        return "/".join(parts[:5])
    return class_key


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


class _Planner:
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
        gtin = _gtin_of(lot)
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

    def _map_unpack(self, event: Event, rule: Rule) -> None:
        unit = self._unit(event)
        refs = self._take(unit.lot, Fraction(1))
        for g in _goods(event.body, "childEPCs", "childQuantityList"):
            fields = {
                "lot": g.lot,
                "quantity": _number(g.quantity),
                "unit": g.unit,
                "goodsClass": self._goods_class(g.lot),
            }
            self._add(event, rule, Kind.PRODUCTION, g.lot, fields, refs, g.quantity, g.epcs)

    def _map_transform(self, event: Event, rule: Rule) -> None:
        inputs = _goods(event.body, "inputEPCList", "inputQuantityList")
        outputs = _goods(event.body, "outputEPCList", "outputQuantityList")
        if not outputs:
            raise Unmappable("a TransformationEvent without outputs produces nothing to record")
        # Inputs the signer holds on the ledger are referenced (and used up); inputs never
        # recorded on the ledger are kept in the event as declared, without provenance.
        refs = [r for g in inputs for r in self._take(g.lot, g.quantity, partial=True)]
        for g in outputs:
            fields = {
                "lot": g.lot,
                "quantity": _number(g.quantity),
                "unit": g.unit,
                "goodsClass": self._goods_class(g.lot),
            }
            self._add(event, rule, Kind.PRODUCTION, g.lot, fields, refs, g.quantity, g.epcs)

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


def group_by_event(items: list[PlannedAttestation]) -> dict[str, list[int]]:
    """Plan item positions by event key."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        out[item.event_key].append(i)
    return dict(out)
