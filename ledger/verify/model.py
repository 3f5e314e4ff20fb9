"""What a verification returns: checks with statuses, findings with reason codes, a verdict."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ledger.reasons import Reason


class CheckStatus(enum.StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"


class Verdict(enum.StrEnum):
    VERIFIED = "VERIFIED"
    FLAGGED = "FLAGGED"
    UNVERIFIABLE = "UNVERIFIABLE"


# Findings that mean "the evidence itself cannot be trusted or checked" rather than
# "the evidence shows a problem with the goods": they make a shipment UNVERIFIABLE.
EVIDENCE_FAILURES = frozenset(
    {
        Reason.MALFORMED,
        Reason.WRONG_DOMAIN,
        Reason.BAD_SIGNATURE,
        Reason.UID_MISMATCH,
        Reason.PAYLOAD_MISMATCH,
        Reason.UNKNOWN_ATTESTER,
        Reason.NOT_ANCHORED,
        Reason.ANCHOR_UNCONFIRMED,
        Reason.WRONG_CONTRACT,
        Reason.CHAIN_UNAVAILABLE,
        Reason.FIELD_INVALID,
        Reason.UNKNOWN_REFERENCE,
        Reason.STORE_CORRUPTED,
        Reason.FIELD_UNDISCLOSED,
        Reason.EVIDENCE_INCOMPLETE,
    }
)


@dataclass(frozen=True)
class Finding:
    """One problem found, under a stable reason code, naming the attestations involved."""

    code: Reason
    message: str
    uids: tuple[str, ...] = ()
    # The numbers and parties behind the finding, for an officer to act on (e.g. a
    # CUSTODY_FORK's lot quantity and each hand-over: how much, by whom). Not compared.
    facts: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The finding with what the officer should do about it (from `ledger.reasons`)."""
        shaped: dict[str, Any] = {
            "code": self.code.value,
            "message": self.message,
            "uids": list(self.uids),
            "officerAction": self.code.info.officer_action,
        }
        if self.facts:
            shaped["facts"] = self.facts
        return shaped


@dataclass
class CheckResult:
    """The outcome of one check. INVALID carries findings; ERROR says why it could not run.

    `notices` are informational findings that do not bear on this shipment's verdict
    (e.g. a third party's unentitled claim about the goods, reported on the claimant).
    `distrusts` names records later checks must ignore (failed integrity or identity)."""

    name: str
    status: CheckStatus
    findings: list[Finding] = field(default_factory=list)
    detail: str = ""
    notices: list[Finding] = field(default_factory=list)
    distrusts: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "findings": [f.to_json() for f in self.findings],
            "notices": [f.to_json() for f in self.notices],
        }


@dataclass(frozen=True)
class RiskFactor:
    name: str
    points: int
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"factor": self.name, "points": self.points, "why": self.why}


@dataclass
class VerificationResult:
    shipment: str
    verdict: Verdict
    risk_score: int
    checks: list[CheckResult]
    risk_factors: list[RiskFactor]
    evaluated_at: int
    # The verdict may change by itself at this time (an attestation in the evidence expires).
    valid_until: float = float("inf")
    # The chain head whose facts the verdict rests on (-1: the chain could not be read).
    chain_head: int = -1
    # How complete the verifying node's copy of the ledger was (None: no copy was used).
    completeness: dict[str, Any] | None = None
    # Every party the evidence names, with its on-chain name or "unknown" (`.parties`).
    parties: list[dict[str, Any]] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    @property
    def codes(self) -> set[Reason]:
        return {f.code for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        return {
            "shipment": self.shipment,
            "verdict": self.verdict.value,
            "riskScore": self.risk_score,
            "reasons": sorted({f.code.value for f in self.findings}),
            "findings": [f.to_json() for f in self.findings],
            "notices": [f.to_json() for c in self.checks for f in c.notices],
            "checks": [c.to_json() for c in self.checks],
            "riskFactors": [r.to_json() for r in self.risk_factors],
            "evaluatedAt": self.evaluated_at,
            "completeness": self.completeness,
            "parties": self.parties,
        }

    def text_lines(self) -> list[str]:
        """The verdict for a terminal, below its headline: each check, its findings with
        what to do, the risk factors, and the parties by name and address."""
        lines = []
        for check in self.checks:
            lines.append(f"  {check.name:<15} {check.status.value:<8} {check.detail}")
            for finding in check.findings:
                lines.append(f"      {finding.code.value}: {finding.message}")
                lines.append(f"        what to do: {finding.code.info.officer_action}")
        for factor in self.risk_factors:
            lines.append(f"  risk +{factor.points:<3} {factor.name}: {factor.why}")
        if self.parties:
            lines.append("  parties:")
            lines.extend(f"    {p['shown']}" for p in self.parties)
        return lines
