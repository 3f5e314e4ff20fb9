"""Check 4, status: nothing in the history revoked by its attester or expired."""

from __future__ import annotations

from ledger.kinds import Kind
from ledger.reasons import Reason

from ..context import Context, outcome
from ..model import CheckResult, Finding


def check_status(ctx: Context) -> CheckResult:
    findings: list[Finding] = []
    notices: list[Finding] = []
    for uid in sorted(ctx.ancestors):
        record = ctx.evidence.records[uid]
        for other in ctx.evidence.children(uid):
            if (
                other.kind is Kind.REVOCATION
                and ctx.trusted(other)
                and other.attester.lower() != record.attester.lower()
            ):
                notices.append(
                    Finding(
                        Reason.NOT_ENTITLED,
                        f"{other.attester} tried to revoke a {record.kind.type_name} signed by {record.attester}",
                        (other.uid, uid),
                    )
                )
        if record.kind in (Kind.LICENCE, Kind.IP_ASSET):
            continue  # licensing judges licences (LICENCE_REVOKED / LICENCE_EXPIRED)
        revocations = ctx.revocations_of(record)
        if revocations:
            findings.append(
                Finding(
                    Reason.REVOKED,
                    f"{record.kind.type_name} revoked by its attester",
                    (uid, *[r for r in revocations if r.startswith("0x")]),
                )
            )
        expires = record.attestation.expires_at
        if expires and expires <= ctx.now:
            findings.append(Finding(Reason.EXPIRED, f"{record.kind.type_name} expired at {expires}", (uid,)))
    result = outcome("status", findings)
    result.notices = notices
    return result
