"""The one EPCIS → attestation mapping table. `docs/epcis-mapping.md` is generated from it
(`python -m ledger.epcis.mapping > docs/epcis-mapping.md`) and a test keeps the two equal;
the importer picks the rule for each event from this same table (`rule_for`), and the
exporter writes natively recorded attestations back as the events of this same table
(`rule_for_native`).

An event matches the first rule whose event type, action, business step and condition
(`when`) match; an event no rule matches is refused with its event id and the reason —
never dropped. Events that move no goods (observations, inspections, transactions naming
no recipient) match an `observe` rule last and become an Observation, which changes no
custody and no lot balance; an event that claims a custody change the ledger cannot check
matches a custody rule and is refused there with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..kinds import Kind

SHIPPING = frozenset({"shipping", "departing"})
RECEIVING = frozenset({"receiving", "arriving", "accepting"})
COMMISSIONING = frozenset({"commissioning", "creating_class_instance"})
ANY = frozenset[str]()

# Conditions a rule may add to its event type, action and bizStep; the importer decides
# each for an event (some read the ledger: what awaits acceptance by the signer).
NAMES_RECIPIENT = "names-recipient"
CLAIMS_HAND_OVER = "claims-hand-over"
CONDITIONS = {
    NAMES_RECIPIENT: "its destinationList names an owning_party or possessing_party (a recipient)",
    CLAIMS_HAND_OVER: "its sourceList names an owning_party or possessing_party, or a hand-over of its goods to "
    "the signer awaits acceptance on the ledger (or earlier in the document)",
}


@dataclass(frozen=True)
class Rule:
    """Events of `event_type` with an action in `actions` (empty: any, or none for a
    TransformationEvent), a bizStep in `biz_steps` (empty: any) and, when `when` is set,
    that condition (a key of CONDITIONS) become `kind`. `native` is (action, bizStep) of
    the event a natively recorded attestation of `kind` is exported as (None: this rule
    is not used for export; the bizStep of an Observation is its own)."""

    name: str
    event_type: str
    actions: frozenset[str]
    biz_steps: frozenset[str]
    kind: Kind
    becomes: str
    needs: str
    when: str = ""
    native: tuple[str | None, str | None] | None = None

    def matches(self, event_type: str, action: str | None, biz_step: str | None, holds: Callable[[str], bool]) -> bool:
        return (
            event_type == self.event_type
            and (not self.actions or action in self.actions)
            and (not self.biz_steps or biz_step in self.biz_steps)
            and (not self.when or holds(self.when))
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
        native=("ADD", "commissioning"),
    ),
    Rule(
        "ship",
        "ObjectEvent",
        ANY,
        SHIPPING,
        Kind.TRANSFER,
        "one Transfer per class of goods to the destinationList owning_party (else possessing_party), "
        "referencing the custody records of those goods the signer holds",
        "the party's address in the party directory; the goods held by the signer on the ledger",
        when=NAMES_RECIPIENT,
        native=("OBSERVE", "shipping"),
    ),
    Rule(
        "receive",
        "ObjectEvent",
        ANY,
        RECEIVING,
        Kind.TRANSFER_ACCEPTANCE,
        "one TransferAcceptance per class of goods, of the open hand-over of those goods to the signer",
        "a Transfer of those goods to the signer on the ledger (or earlier in the document)",
        when=CLAIMS_HAND_OVER,
        native=("OBSERVE", "receiving"),
    ),
    Rule(
        "ship-unit",
        "AggregationEvent",
        ANY,
        SHIPPING,
        Kind.TRANSFER,
        "a Transfer of the logistic unit (parentID, an SSCC) to the destinationList owning_party",
        "as for ObjectEvent shipping; the unit was packed on the ledger",
        when=NAMES_RECIPIENT,
    ),
    Rule(
        "receive-unit",
        "AggregationEvent",
        ANY,
        RECEIVING,
        Kind.TRANSFER_ACCEPTANCE,
        "a TransferAcceptance of the open hand-over of the logistic unit (parentID) to the signer",
        "a Transfer of that unit to the signer on the ledger (or earlier in the document)",
        when=CLAIMS_HAND_OVER,
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
        native=(None, "commissioning"),
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
        when=NAMES_RECIPIENT,
        native=("ADD", "shipping"),
    ),
    Rule(
        "observe",
        "ObjectEvent",
        frozenset({"OBSERVE"}),
        ANY,
        Kind.OBSERVATION,
        "one Observation per class of goods named (or one for the event when it names no goods the ledger "
        "holds): eventType, eventTime, bizStep, lot and quantity; changes no custody and no lot balance",
        "the signer holds a supply-chain or rights-holder role",
        native=("OBSERVE", None),
    ),
    Rule(
        "observe-unit",
        "AggregationEvent",
        frozenset({"OBSERVE"}),
        ANY,
        Kind.OBSERVATION,
        "as `observe`, for the logistic unit (parentID) and its children",
        "as for `observe`",
    ),
    Rule(
        "observe-transaction",
        "TransactionEvent",
        ANY,
        ANY,
        Kind.OBSERVATION,
        "as `observe`: a business transaction naming no recipient (or being closed, DELETE) moves nothing",
        "as for `observe`",
    ),
    Rule(
        "observe-association",
        "AssociationEvent",
        ANY,
        ANY,
        Kind.OBSERVATION,
        "as `observe`, for the parentID and its children (sensors, assets): an association moves no goods",
        "as for `observe`",
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

WHY_OBSERVATION = (
    "Why Observation: GS1's own examples include well-formed events that move no custody or ownership "
    "(an OBSERVE shipping read that names no recipient, a patient's discharge, a train passing a signal). "
    "Refusing them loses true records; mapping them to a hand-over would invent a custody change nobody "
    "signed for. So they are recorded as what they are: an Observation signed by the importer, evidence "
    "only. The verification engine never counts an Observation as custody (a shipment resting on one has "
    "a custody gap), and an Observation never uses up goods. An event that does claim a custody change — "
    "it names a recipient or a sender party, or it commissions, packs, unpacks or transforms goods — goes "
    "to its custody rule and is refused there with its eventID and the reason when the ledger cannot check "
    "it (an unknown party, goods the signer does not hold, no hand-over to accept). An ObjectEvent with "
    "action ADD that is not commissioning, or DELETE (goods ceasing to exist), matches no rule and is "
    "refused: the ledger has no record for it and will not pretend it is a mere observation. A receiving event "
    "that names no sender is an acceptance when a hand-over of its goods to the signer awaits one, else an "
    "Observation; imported again once that hand-over is on the ledger, it is recorded as the acceptance (the "
    "only case in which a repeated import records something new: the ledger changed, not the document)."
)

NATIVE_EXPORT = (
    "Export: an attestation imported from EPCIS is written back as the event it came from. One recorded "
    "natively is written as the event of the first rule above with its kind and an export form "
    "(Production without custody inputs → `commission`, with them → `transform`; Transfer → `ship`; "
    "TransferAcceptance → `receive`; Shipment → `transact`; Observation → `observe`), with eventID "
    "`urn:x-provenance:attestation:<uid>`, parties as `did:pkh:eip155:<chain id>:"
    "<address>`, a lot that is not a GS1 key as `urn:x-provenance:lot:<lot>`. Every exported event carries "
    "the UID, attester and anchoring of its attestations in `prov:attestations`."
)


def rule_for(event_type: str, action: str | None, biz_step: str | None, holds: Callable[[str], bool]) -> Rule | None:
    """The first rule matching the event (`holds` decides a rule's condition), or None."""
    return next((r for r in RULES if r.matches(event_type, action, biz_step, holds)), None)


def rule_for_native(kind: Kind, from_inputs: bool) -> Rule | None:
    """The rule whose event a natively recorded attestation of `kind` is exported as (a
    Production made from custody inputs is a transformation), or None (not exported)."""
    for r in RULES:
        if r.kind is kind and r.native is not None:
            if kind is Kind.PRODUCTION and (r.event_type == "TransformationEvent") != from_inputs:
                continue
            return r
    return None


def markdown_table() -> str:
    """The table as Markdown (the documented form)."""
    lines = [
        "| rule | EPCIS event | action | bizStep | when | attestation | what it records | what it needs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in RULES:
        actions = ", ".join(sorted(r.actions)) or "any"
        steps = ", ".join(sorted(r.biz_steps)) or "any"
        when = CONDITIONS[r.when] if r.when else "always"
        lines.append(
            f"| `{r.name}` | {r.event_type} | {actions} | {steps} | {when} | {r.kind.type_name} | {r.becomes} "
            f"| {r.needs} |"
        )
    lines += ["", "Rules are tried in order; the first that matches decides.", ""]
    lines += ["Every mapped attestation also keeps:", ""]
    lines += [f"- {f}" for f in KEPT_FIELDS]
    lines += [
        "",
        "Any other event is refused with its event id and the reason; a document with a refused event records nothing.",
        "",
        WHY_OBSERVATION,
        "",
        NATIVE_EXPORT,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print("# EPCIS 2.0 mapping\n\nGenerated from `ledger/epcis/mapping.py`; do not edit by hand.\n")
    print(markdown_table(), end="")
