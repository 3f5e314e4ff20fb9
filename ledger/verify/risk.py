"""The risk score: the findings' weights plus simple, explainable signals."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ledger.reasons import Reason

from .context import number, quantity
from .evidence import Evidence
from .model import CheckResult, CheckStatus, RiskFactor

RISK_WEIGHTS: dict[Reason, int] = {
    Reason.BAD_SIGNATURE: 70,
    Reason.UID_MISMATCH: 70,
    Reason.PAYLOAD_MISMATCH: 70,
    Reason.WRONG_DOMAIN: 60,
    Reason.WRONG_CONTRACT: 70,
    Reason.UNKNOWN_ATTESTER: 50,
    Reason.KEY_NOT_VALID: 50,
    Reason.ROLE_MISSING: 40,
    Reason.ATTESTER_SUSPENDED: 50,
    Reason.NOT_ANCHORED: 30,
    Reason.ANCHOR_UNCONFIRMED: 10,
    Reason.REVOKED: 40,
    Reason.EXPIRED: 20,
    Reason.CUSTODY_GAP: 50,
    Reason.CUSTODY_FORK: 60,
    Reason.CUSTODY_CYCLE: 70,
    Reason.QUANTITY_EXCEEDED: 50,
    Reason.TIME_INCONSISTENT: 30,
    Reason.LICENCE_MISSING: 60,
    Reason.LICENCE_EXPIRED: 40,
    Reason.LICENCE_TERRITORY: 50,
    Reason.LICENCE_GOODS: 50,
    Reason.LICENCE_QUANTITY: 50,
    Reason.LICENCE_REVOKED: 50,
    Reason.WATCHLIST_HIT: 70,
    Reason.PRIOR_FINDING: 30,
    Reason.CHAIN_UNAVAILABLE: 20,
    Reason.STORE_CORRUPTED: 60,
    Reason.SIGNATURE_TOO_OLD: 50,
    Reason.GOODS_MISMATCH: 60,
    Reason.FIELD_UNDISCLOSED: 30,
}


@dataclass(frozen=True)
class ShipmentHistory:
    """What the store knows of an exporter's other shipments (for risk signals only):
    how many, the destinations among them, and their quantities (or a typical one)."""

    shipments: int
    destinations: frozenset[str]
    quantities: tuple[Fraction, ...]


def risk(
    checks: list[CheckResult], evidence: Evidence, history: ShipmentHistory | None
) -> tuple[int, list[RiskFactor]]:
    """Score 0-100: the findings' weights plus simple, explainable signals."""
    factors: list[RiskFactor] = []
    for code in sorted({f.code for c in checks for f in c.findings}):
        factors.append(RiskFactor(code.value, RISK_WEIGHTS.get(code, 20), code.info.meaning))
    if any(c.status is CheckStatus.ERROR for c in checks):
        factors.append(RiskFactor("CHECK_ERROR", 30, "a check could not run"))
    shipment = evidence.records[evidence.shipment]
    if history is not None:
        if history.shipments == 0:
            factors.append(RiskFactor("NEW_EXPORTER", 10, "first shipment declared by this exporter"))
        elif shipment.field("destination") not in history.destinations:
            factors.append(
                RiskFactor("NEW_ROUTE", 5, f"first shipment by this exporter to {shipment.field('destination')}")
            )
        if history.quantities:
            typical = sorted(history.quantities)[len(history.quantities) // 2]
            shipped = quantity(shipment) or Fraction(0)
            if typical > 0 and shipped > 3 * typical:
                factors.append(
                    RiskFactor(
                        "QUANTITY_SPIKE",
                        10,
                        f"quantity {number(shipped)} is over 3x this exporter's typical {number(typical)}",
                    )
                )
    return min(100, sum(f.points for f in factors)), factors
