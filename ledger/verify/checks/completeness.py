"""Check 9, completeness: the evidence holds every public record that bears on the
verdict, because the node's copy of the ledger is complete — checked against the
on-chain batch roots — through a stated batch. A verifier that sees only a presented
bundle cannot say so: the check is SKIPPED (so, mandatory by default, never VERIFIED)."""

from __future__ import annotations

from ledger.reasons import Reason

from ..context import Context
from ..model import CheckResult, CheckStatus, Finding


def check_completeness(ctx: Context) -> CheckResult:
    if ctx.completeness_error:
        return CheckResult(
            "completeness",
            CheckStatus.ERROR,
            [Finding(Reason.EVIDENCE_INCOMPLETE, ctx.completeness_error)],
            ctx.completeness_error,
        )
    watermark = ctx.completeness
    if watermark is None:
        return CheckResult(
            "completeness",
            CheckStatus.SKIPPED,
            detail="no complete copy of the public ledger: only the presented evidence was seen "
            "(verify at a node, or give verify-bundle a --mirror)",
        )
    if not watermark.complete:
        return CheckResult(
            "completeness", CheckStatus.INVALID, [Finding(Reason.EVIDENCE_INCOMPLETE, watermark.describe())]
        )
    return CheckResult("completeness", CheckStatus.VALID, detail=watermark.describe())
