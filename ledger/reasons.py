"""The one table of reason codes: every refusal and every verification finding uses
one of these, with what it means and what a customs officer should do about it.

Codes are stable API: never rename or reuse one. `docs/reason-codes.md` is generated
from this table (`python -m ledger.reasons > docs/reason-codes.md`) and a test keeps
the two equal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class ReasonInfo:
    meaning: str
    officer_action: str


class Reason(enum.StrEnum):
    """Stable machine-readable reason codes."""

    MALFORMED = "MALFORMED"
    FIELD_INVALID = "FIELD_INVALID"
    WRONG_DOMAIN = "WRONG_DOMAIN"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UID_MISMATCH = "UID_MISMATCH"
    PAYLOAD_MISMATCH = "PAYLOAD_MISMATCH"
    UNKNOWN_ATTESTER = "UNKNOWN_ATTESTER"
    KEY_NOT_VALID = "KEY_NOT_VALID"
    ROLE_MISSING = "ROLE_MISSING"
    ATTESTER_SUSPENDED = "ATTESTER_SUSPENDED"
    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE"
    ISSUED_IN_FUTURE = "ISSUED_IN_FUTURE"
    NOT_ANCHORED = "NOT_ANCHORED"
    ANCHOR_UNCONFIRMED = "ANCHOR_UNCONFIRMED"
    WRONG_CONTRACT = "WRONG_CONTRACT"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    CUSTODY_GAP = "CUSTODY_GAP"
    CUSTODY_FORK = "CUSTODY_FORK"
    CUSTODY_CYCLE = "CUSTODY_CYCLE"
    QUANTITY_EXCEEDED = "QUANTITY_EXCEEDED"
    TIME_INCONSISTENT = "TIME_INCONSISTENT"
    LICENCE_MISSING = "LICENCE_MISSING"
    LICENCE_EXPIRED = "LICENCE_EXPIRED"
    LICENCE_TERRITORY = "LICENCE_TERRITORY"
    LICENCE_GOODS = "LICENCE_GOODS"
    LICENCE_QUANTITY = "LICENCE_QUANTITY"
    LICENCE_REVOKED = "LICENCE_REVOKED"
    WATCHLIST_HIT = "WATCHLIST_HIT"
    PRIOR_FINDING = "PRIOR_FINDING"
    CHAIN_UNAVAILABLE = "CHAIN_UNAVAILABLE"
    STORE_CORRUPTED = "STORE_CORRUPTED"
    SIGNATURE_TOO_OLD = "SIGNATURE_TOO_OLD"
    NOT_ENTITLED = "NOT_ENTITLED"
    GOODS_MISMATCH = "GOODS_MISMATCH"
    FIELD_UNDISCLOSED = "FIELD_UNDISCLOSED"
    EVIDENCE_INCOMPLETE = "EVIDENCE_INCOMPLETE"

    @property
    def info(self) -> ReasonInfo:
        return REASONS[self]


_HOLD = "Hold the shipment for documentary control; ask the declarant for the original signed records."
REASONS: dict[Reason, ReasonInfo] = {
    Reason.MALFORMED: ReasonInfo(
        "The record is not well-formed JSON of the expected shape.", "Ask the sender to resubmit; nothing was recorded."
    ),
    Reason.FIELD_INVALID: ReasonInfo(
        "A field is missing, of the wrong type, or holds a forbidden value (control characters, confusable identifiers, out-of-range numbers).",
        "Ask the sender to correct the named field.",
    ),
    Reason.WRONG_DOMAIN: ReasonInfo(
        "The signature is bound to another chain or ledger contract (EIP-712 domain), e.g. replayed from another deployment.",
        "Treat as not presented on this ledger; " + _HOLD,
    ),
    Reason.BAD_SIGNATURE: ReasonInfo(
        "The signature does not recover to the attester, is malformed, or is malleable (high s).",
        "Treat the record as forged. " + _HOLD,
    ),
    Reason.UID_MISMATCH: ReasonInfo(
        "The identifier presented is not the EIP-712 digest of the record.", "Treat the record as altered. " + _HOLD
    ),
    Reason.PAYLOAD_MISMATCH: ReasonInfo(
        "Disclosed fields or field hashes do not recompute the signed payload commitment.",
        "Treat the disclosed data as altered. " + _HOLD,
    ),
    Reason.UNKNOWN_ATTESTER: ReasonInfo(
        "The signer is not a registered participant.",
        "Treat as unverified; check the party against the trusted-trader register.",
    ),
    Reason.KEY_NOT_VALID: ReasonInfo(
        "The signer's key was outside its validity window or already rotated out when it signed.",
        "Treat as unverified; a rotated-out key may be compromised. " + _HOLD,
    ),
    Reason.ROLE_MISSING: ReasonInfo(
        "The signer did not hold the role this kind of record needs when it signed.",
        "Treat as unverified; the party was not accredited for this act.",
    ),
    Reason.ATTESTER_SUSPENDED: ReasonInfo(
        "The signer was suspended by the registrar when it signed.",
        "Hold the shipment; contact the accreditation authority.",
    ),
    Reason.UNKNOWN_REFERENCE: ReasonInfo(
        "The record references an attestation this ledger does not hold.",
        "Ask the sender to submit the referenced records first.",
    ),
    Reason.ISSUED_IN_FUTURE: ReasonInfo(
        "The signing time is later than now (beyond the allowed clock skew).",
        "Ask the sender to check its clock and resubmit.",
    ),
    Reason.NOT_ANCHORED: ReasonInfo(
        "The record is not yet in an anchored batch or recorded directly on chain.",
        "Retry shortly; if it persists, treat as unverified.",
    ),
    Reason.ANCHOR_UNCONFIRMED: ReasonInfo(
        "The anchoring transaction has fewer confirmations than policy requires.", "Retry shortly."
    ),
    Reason.WRONG_CONTRACT: ReasonInfo(
        "The anchor was emitted by a contract other than the configured ledger.", "Treat as forged evidence. " + _HOLD
    ),
    Reason.REVOKED: ReasonInfo(
        "The record was revoked by its attester or the rights holder.", "Treat the record as withdrawn. " + _HOLD
    ),
    Reason.EXPIRED: ReasonInfo("The record's validity has ended.", "Ask for a current record."),
    Reason.CUSTODY_GAP: ReasonInfo(
        "The chain of custody from production to the exporter is broken: a hand-over by a party that did not hold the goods, or a missing acceptance.",
        "Hold the shipment; request the missing custody documents.",
    ),
    Reason.CUSTODY_FORK: ReasonInfo(
        "The same goods were handed over or shipped twice (a double-spend of a lot).",
        "Hold the shipment: possible duplication or counterfeit.",
    ),
    Reason.CUSTODY_CYCLE: ReasonInfo(
        "The custody graph loops back on itself.", "Treat as fabricated custody. " + _HOLD
    ),
    Reason.QUANTITY_EXCEEDED: ReasonInfo(
        "More goods leave a custody step than entered it.", "Hold the shipment: possible unlicensed over-production."
    ),
    Reason.TIME_INCONSISTENT: ReasonInfo(
        "A custody step is dated before the step it depends on.",
        "Request an explanation; treat as unverified meanwhile.",
    ),
    Reason.LICENCE_MISSING: ReasonInfo(
        "An IP asset embodied in the goods has no licence chain from its rights holder to the producer: no licence, a licence missing from the evidence, or a sub-licence granted under a licence that does not permit sub-licensing.",
        "Hold the shipment and notify the rights holder (application for action).",
    ),
    Reason.LICENCE_EXPIRED: ReasonInfo(
        "The licence was not valid at the production or shipment date.",
        "Hold the shipment and notify the rights holder.",
    ),
    Reason.LICENCE_TERRITORY: ReasonInfo(
        "The licence does not cover the destination territory.", "Hold the shipment and notify the rights holder."
    ),
    Reason.LICENCE_GOODS: ReasonInfo(
        "The licence does not cover the goods class (HS code).", "Hold the shipment and notify the rights holder."
    ),
    Reason.LICENCE_QUANTITY: ReasonInfo(
        "Production exceeds the licence's quantity cap.", "Hold the shipment and notify the rights holder."
    ),
    Reason.LICENCE_REVOKED: ReasonInfo(
        "A licence in the chain was revoked by its licensor.",
        "Hold the shipment and notify the rights holder.",
    ),
    Reason.WATCHLIST_HIT: ReasonInfo(
        "The goods class is on a rights holder's watch list and no licence chain covers the shipment.",
        "Detain for inspection; notify the rights holder.",
    ),
    Reason.PRIOR_FINDING: ReasonInfo(
        "Customs recorded findings earlier on these lots or parties.", "Review the earlier findings before release."
    ),
    Reason.CHAIN_UNAVAILABLE: ReasonInfo(
        "The chain could not be reached, so on-chain facts could not be checked.",
        "Do not release on this answer; retry, or fall back to manual control.",
    ),
    Reason.STORE_CORRUPTED: ReasonInfo(
        "A stored record no longer matches what was signed, or a stored batch no longer rebuilds the root anchored on chain: the node's database was altered or damaged.",
        "Do not release on this answer; verify the exporter's proof bundle instead and alert the node's operator.",
    ),
    Reason.SIGNATURE_TOO_OLD: ReasonInfo(
        "The signing time is older than the deployment's maximum signature age, or the record was anchored more than that long after it claims to have been signed by a key that had lost its standing by then (a backdated signature).",
        "Treat the record as unverified; ask for a freshly signed record. " + _HOLD,
    ),
    Reason.NOT_ENTITLED: ReasonInfo(
        "The signer is not the party entitled to make this statement: a hand-over of goods it did not hold, a production counted under someone else's licence, or a revocation of another party's record. Reported on the claimant; it does not count against the goods.",
        "No action on this shipment; the claimant's conduct may merit review.",
    ),
    Reason.GOODS_MISMATCH: ReasonInfo(
        "The goods class declared on the shipment differs from the goods class of the production it carries.",
        "Hold the shipment for physical inspection: possible misdeclaration to evade a watch list or licence.",
    ),
    Reason.FIELD_UNDISCLOSED: ReasonInfo(
        "A field a check needs was not disclosed in the evidence, so the check cannot pass.",
        "Ask the declarant for evidence disclosing the named record's fields.",
    ),
    Reason.EVIDENCE_INCOMPLETE: ReasonInfo(
        "The verifying node's copy of the public ledger is not complete (a batch anchored on chain is missing records or was never mirrored), or it could not be measured: records that bear on the verdict may be missing.",
        "Do not release on this answer; retry once the node has caught up, or verify at a complete node.",
    ),
}


def markdown_table() -> str:
    """The reason-code table as Markdown (the documented form)."""
    lines = ["| code | meaning | what the officer should do |", "|---|---|---|"]
    lines += [f"| `{r.value}` | {r.info.meaning} | {r.info.officer_action} |" for r in Reason]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print("# Reason codes\n\nGenerated from `ledger/reasons.py`; do not edit by hand.\n")
    print(markdown_table(), end="")
