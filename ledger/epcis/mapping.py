"""The one EPCIS → attestation mapping table. `docs/epcis-mapping.md` is generated from it
(`python -m ledger.epcis.mapping > docs/epcis-mapping.md`) and a test keeps the two equal;
the importer picks the rule for each event from this same table (`rule_for`).

An event matches the first rule whose event type, action and business step match; an
event no rule matches is refused with its event id and the reason — never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kinds import Kind

SHIPPING = frozenset({"shipping", "departing"})
RECEIVING = frozenset({"receiving", "arriving", "accepting"})
COMMISSIONING = frozenset({"commissioning", "creating_class_instance"})
ANY = frozenset[str]()


@dataclass(frozen=True)
class Rule:
    """Events of `event_type` with an action in `actions` (empty: any, or none for a
    TransformationEvent) and a bizStep in `biz_steps` (empty: any) become `kind`."""

    name: str
    event_type: str
    actions: frozenset[str]
    biz_steps: frozenset[str]
    kind: Kind
    becomes: str
    needs: str

    def matches(self, event_type: str, action: str | None, biz_step: str | None) -> bool:
        return (
            event_type == self.event_type
            and (not self.actions or action in self.actions)
            and (not self.biz_steps or biz_step in self.biz_steps)
        )


RULES: tuple[Rule, ...] = (
    Rule(
        "commission",
        "ObjectEvent",
        frozenset({"ADD"}),
        COMMISSIONING,
        Kind.PRODUCTION,
        "one Production per class of goods (GTIN, or GTIN + lot): lot = the class's canonical "
        "Digital Link URI, quantity = number of EPCs or the quantityList quantity, unit = uom or EA",
        "an HS goods class for each GTIN (import option); the signer holds the manufacturer role",
    ),
    Rule(
        "ship",
        "ObjectEvent",
        ANY,
        SHIPPING,
        Kind.TRANSFER,
        "one Transfer per class of goods to the destinationList owning_party, referencing the "
        "custody records of those goods the signer holds",
        "the owning_party's address in the party directory; the goods held by the signer on the ledger",
    ),
    Rule(
        "receive",
        "ObjectEvent",
        ANY,
        RECEIVING,
        Kind.TRANSFER_ACCEPTANCE,
        "one TransferAcceptance per class of goods, of the open hand-over of those goods to the signer",
        "a Transfer of those goods to the signer on the ledger (or earlier in the document)",
    ),
    Rule(
        "ship-unit",
        "AggregationEvent",
        ANY,
        SHIPPING,
        Kind.TRANSFER,
        "a Transfer of the logistic unit (parentID, an SSCC) to the destinationList owning_party",
        "as for ObjectEvent shipping; the unit was packed on the ledger",
    ),
    Rule(
        "receive-unit",
        "AggregationEvent",
        ANY,
        RECEIVING,
        Kind.TRANSFER_ACCEPTANCE,
        "a TransferAcceptance of the open hand-over of the logistic unit (parentID) to the signer",
        "a Transfer of that unit to the signer on the ledger (or earlier in the document)",
    ),
    Rule(
        "pack",
        "AggregationEvent",
        frozenset({"ADD"}),
        ANY,
        Kind.PRODUCTION,
        "a Production of the logistic unit (lot = the SSCC, quantity 1, unit EA) from the custody "
        "records of its children; childEPCs and childQuantityList kept",
        "the children's HS goods class (all one class); the manufacturer role",
    ),
    Rule(
        "unpack",
        "AggregationEvent",
        frozenset({"DELETE"}),
        ANY,
        Kind.PRODUCTION,
        "one Production per child class from the logistic unit's custody record",
        "the unit held by the signer; the children's HS goods class; the manufacturer role",
    ),
    Rule(
        "transform",
        "TransformationEvent",
        ANY,
        ANY,
        Kind.PRODUCTION,
        "one Production per output class, referencing the custody records of the inputs the signer "
        "holds; inputEPCList / inputQuantityList kept with their exact quantities and units",
        "an HS goods class for each output GTIN; the manufacturer role",
    ),
    Rule(
        "transact",
        "TransactionEvent",
        frozenset({"ADD"}),
        ANY,
        Kind.SHIPMENT,
        "one Shipment per class of goods under the business transactions listed (bizTransactionList "
        "kept; shipmentId = the first bizTransaction), to the destinationList owning_party's country",
        "a country for the destination party in the party directory; goods held by the signer; exporter role",
    ),
)

# Kept on every mapped attestation besides the typed fields (generic JSON fields).
KEPT_FIELDS = (
    "epcisEventKey: eventID, or the GS1 event hash when the event has none",
    "epcisEventHash: the GS1 canonical event hash (ni:///sha-256;…)",
    "epcisEvent: the event as imported — eventTime, eventTimeZoneOffset, readPoint, bizLocation, "
    "bizTransactionList, sourceList, destinationList, quantities, extensions",
    "epcs: the canonical Digital Link URIs of the items of this class in the event",
)


def rule_for(event_type: str, action: str | None, biz_step: str | None) -> Rule | None:
    """The first rule matching the event, or None (the event is refused)."""
    return next((r for r in RULES if r.matches(event_type, action, biz_step)), None)


def markdown_table() -> str:
    """The table as Markdown (the documented form)."""
    lines = [
        "| rule | EPCIS event | action | bizStep | attestation | what it records | what it needs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RULES:
        actions = ", ".join(sorted(r.actions)) or "any"
        steps = ", ".join(sorted(r.biz_steps)) or "any"
        lines.append(
            f"| `{r.name}` | {r.event_type} | {actions} | {steps} | {r.kind.type_name} | {r.becomes} | {r.needs} |"
        )
    lines += ["", "Every mapped attestation also keeps:", ""]
    lines += [f"- {f}" for f in KEPT_FIELDS]
    lines += [
        "",
        "Any other event is refused with its event id and the reason; a document with a refused event records nothing.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print("# EPCIS 2.0 mapping\n\nGenerated from `ledger/epcis/mapping.py`; do not edit by hand.\n")
    print(markdown_table(), end="")
