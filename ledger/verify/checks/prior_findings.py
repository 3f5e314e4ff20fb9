"""Check 8, prior findings: earlier customs findings on the history's records."""

from __future__ import annotations

from ledger.kinds import Kind
from ledger.reasons import Reason

from ..context import Context, outcome
from ..model import CheckResult, Finding

BENIGN_FINDINGS = frozenset({"CLEARED", "INSPECTED_OK", "RELEASED"})


def check_prior_findings(ctx: Context) -> CheckResult:
    findings = []
    notes = []
    for uid in sorted(ctx.ancestors):
        for child in ctx.evidence.children(uid):
            if child.kind is not Kind.CUSTOMS_FINDING or not ctx.trusted(child):
                continue
            if ctx.revocations_of(child, anchored=True):  # withdrawn only by a revocation the chain holds
                continue
            code = str(child.field("finding", ""))
            if code in BENIGN_FINDINGS:
                notes.append(f"{code} by {child.attester}")
            else:
                findings.append(
                    Finding(Reason.PRIOR_FINDING, f"customs finding {code} by {child.attester}", (child.uid, uid))
                )
    result = outcome("prior_findings", findings)
    result.detail = "; ".join(notes)
    return result
