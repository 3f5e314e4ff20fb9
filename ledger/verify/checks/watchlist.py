"""Check 7, watch list: the goods class on a rights holder's watch list with no licence chain from it."""

from __future__ import annotations

from ledger.kinds import Kind
from ledger.reasons import Reason

from ..context import Context, covers_goods, outcome, undisclosed, undisclosed_finding
from ..model import CheckResult, Finding
from .licensing import licensing_once


def check_watchlist(ctx: Context) -> CheckResult:
    ev = ctx.evidence
    shipment = ev.records[ev.shipment]
    goods, destination = shipment.field("goodsClass"), shipment.field("destination")
    if goods is None or destination is None:
        return outcome("watchlist", [undisclosed_finding(shipment, "goodsClass" if goods is None else "destination")])
    _licensing_findings, _notices, covered_by = licensing_once(ctx)
    findings = []
    for entry in ev.of_kind(Kind.WATCHLIST):
        # A withdrawn entry flags nothing; a revocation lifts the flag only once on chain.
        if not ctx.trusted(entry) or ctx.revocations_of(entry, anchored=True):
            continue
        if entry.attestation.expires_at and entry.attestation.expires_at <= ctx.now:
            continue
        if not covers_goods(entry.field("goodsClasses"), goods):
            continue
        territories = entry.field("territories")
        # A hidden field may be the territories: an entry that keeps fields back is read
        # as covering every destination (it can only widen the watch list).
        if not undisclosed(entry) and isinstance(territories, list) and destination not in territories:
            continue
        if entry.attester.lower() not in covered_by:
            findings.append(
                Finding(
                    Reason.WATCHLIST_HIT,
                    f"goods class {goods} is on the watch list of "
                    f"{entry.attester} and no valid licence chain from it "
                    "covers this shipment",
                    (entry.uid, ev.shipment),
                )
            )
    return outcome("watchlist", findings)
