"""Check 6, licensing: every IP asset in the goods is covered by a valid licence chain
from its rights holder, on every date it is relied on. The watch-list check shares the
analysis."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ledger.fields import exact_quantity
from ledger.kinds import Kind
from ledger.reasons import Reason

from ..context import Context, covers_goods, number, outcome, quantity, undisclosed, undisclosed_finding
from ..evidence import Record
from ..model import CheckResult, Finding
from .anchoring import unconfirmed

MAX_LICENCE_DEPTH = 8
MAX_NOTICES = 20  # claims by others are listed, up to a point


@dataclass(frozen=True)
class _Use:
    """What a licence is relied on for: goods made by `producer` at `made`, shipped at
    `shipped` to `destination`."""

    production: Record
    shipment: Record
    destination: Any


def _licensed_output(
    ctx: Context, licence: Record, notices: list[Finding], problems: list[Finding], depth: int = 0
) -> Fraction:
    """What counts against `licence`'s cap: productions under it by its licensee, and
    (recursively) under sub-licences the licensee granted from it. Productions by anyone
    else are reported as notices on the claimant and do not count. At a node, the node's
    running view of the licence's productions is used (`ledger/licence_output.py`), not
    the evidence, so the cost does not grow with the productions made under it."""
    if ctx.licence_outputs is not None:
        return _kept_output(ctx, licence.uid, str(licence.field("licensee", "")).lower(), notices, problems, depth)
    licensee = str(licence.field("licensee", "")).lower()
    total = Fraction(0)
    if depth > MAX_LICENCE_DEPTH:
        return total
    for child in ctx.evidence.children(licence.uid):
        # Only a revocation the chain holds lifts what its production drew from the licence.
        if not ctx.trusted(child) or ctx.revocations_of(child, anchored=True):
            continue
        if child.kind is Kind.PRODUCTION:
            if child.attester.lower() == licensee:
                total += quantity(child) or Fraction(0)
            else:
                notices.append(_not_entitled(child.uid, child.attester, licensee, licence.uid))
        elif child.kind is Kind.LICENCE and child.attester.lower() == licensee:
            total += _licensed_output(ctx, child, notices, problems, depth + 1)
    return total


def _kept_output(
    ctx: Context, licence_uid: str, licensee: str, notices: list[Finding], problems: list[Finding], depth: int
) -> Fraction:
    outputs = ctx.licence_outputs
    assert outputs is not None
    if depth > MAX_LICENCE_DEPTH:
        return Fraction(0)
    snapshot = ctx.require_snapshot()

    def final(block: int) -> bool:
        return unconfirmed(ctx, snapshot, block, "", licence_uid) is None

    rule = (ctx.policy.confirmations, ctx.policy.confirmation_mode)
    direct = outputs.output(licence_uid, licensee, snapshot, final, rule)
    for uid, why in sorted(direct.corrupt.items()):
        problems.append(Finding(Reason.STORE_CORRUPTED, f"a record under the licence: {why}", (uid, licence_uid)))
    for uid, claimant in direct.claims[: max(0, MAX_NOTICES - len(notices))]:
        notices.append(_not_entitled(uid, claimant, licensee, licence_uid))
    total = direct.total
    for uid, (licensor, sub_licensee) in outputs.children(licence_uid).sublicences.items():
        if licensor == licensee and not outputs.revoked(uid, licensor, snapshot, final):
            total += _kept_output(ctx, uid, sub_licensee, notices, problems, depth + 1)
    return total


def _not_entitled(production: str, claimant: str, licensee: str, licence: str) -> Finding:
    return Finding(
        Reason.NOT_ENTITLED,
        f"{claimant} claims a production under a licence granted to {licensee}; not counted against its cap",
        (production, licence),
    )


def _licence_problems(
    ctx: Context, licence: Record, licensee: str, use: _Use, notices: list[Finding], depth: int = 0
) -> tuple[list[Finding], str | None]:
    """Findings for one licence in a chain, and the rights holder at its root (if valid)."""
    findings: list[Finding] = []
    production = use.production
    ids = (licence.uid, production.uid)
    if depth > MAX_LICENCE_DEPTH:
        return [Finding(Reason.LICENCE_MISSING, "licence chain too deep", (licence.uid,))], None
    if not ctx.trusted(licence):
        return [Finding(Reason.LICENCE_MISSING, "the licence itself is not trustworthy", ids)], None
    if undisclosed(licence):
        # A hidden field could be its quantity cap or its sub-licensing terms.
        return [
            Finding(
                Reason.FIELD_UNDISCLOSED,
                f"the licence keeps {undisclosed(licence)} committed field(s) undisclosed: its terms cannot be checked",
                ids,
            )
        ], None
    if str(licence.field("licensee", "")).lower() != licensee.lower():
        findings.append(
            Finding(
                Reason.LICENCE_MISSING, f"licence is granted to {licence.field('licensee')}, not to {licensee}", ids
            )
        )
    if ctx.revocations_of(licence):
        findings.append(Finding(Reason.LICENCE_REVOKED, "the licence was revoked by its licensor", ids))
    valid_from, valid_until = licence.field("validFrom"), licence.field("validUntil")
    expires = licence.attestation.expires_at
    for what, when in (
        ("production", production.attestation.issued_at),
        ("shipment", use.shipment.attestation.issued_at),
    ):
        if not (isinstance(valid_from, int) and isinstance(valid_until, int) and valid_from <= when <= valid_until) or (
            expires and expires <= when
        ):
            findings.append(Finding(Reason.LICENCE_EXPIRED, f"the licence was not valid at {what} ({when})", ids))
    if not covers_goods(licence.field("goodsClasses"), production.field("goodsClass")):
        findings.append(
            Finding(
                Reason.LICENCE_GOODS, f"goods class {production.field('goodsClass')} is not covered by the licence", ids
            )
        )
    territories = licence.field("territories")
    if use.destination is None or not (isinstance(territories, list) and use.destination in territories):
        findings.append(
            Finding(
                Reason.LICENCE_TERRITORY,
                f"destination {use.destination} is outside the licence's territories {territories}",
                ids,
            )
        )
    cap = exact_quantity(licence.field("quantityCap"))
    if cap is not None:
        produced = _licensed_output(ctx, licence, notices, findings)
        if produced > cap:
            findings.append(
                Finding(
                    Reason.LICENCE_QUANTITY,
                    f"{number(produced)} produced under a licence capped at {number(cap)}",
                    ids,
                )
            )
    # Upwards: the licensor must be the rights holder of the asset, or a permitted sub-licensor.
    root: str | None = None
    for ref in licence.refs:
        parent = ctx.evidence.records.get(ref)
        if parent is None:
            findings.append(
                Finding(Reason.LICENCE_MISSING, f"the licence rests on {ref}, which is not in the evidence", ids)
            )
            continue
        if not ctx.trusted(parent):
            continue
        if parent.kind is Kind.IP_ASSET and parent.attester == licence.attester:
            root = parent.attester
        elif parent.kind is Kind.LICENCE:
            if parent.field("sublicensing") is not True:
                findings.append(
                    Finding(
                        Reason.LICENCE_MISSING,
                        "sub-licensed under a licence that does not permit sub-licensing",
                        (licence.uid, parent.uid),
                    )
                )
                continue
            sub_findings, sub_root = _licence_problems(ctx, parent, licence.attester, use, notices, depth + 1)
            findings.extend(sub_findings)
            root = root or sub_root
    if root is None and not any(f.code is Reason.LICENCE_MISSING for f in findings):
        findings.append(
            Finding(
                Reason.LICENCE_MISSING,
                "the licensor is neither the rights holder of a licensed asset nor a permitted sub-licensor",
                ids,
            )
        )
    return findings, root if not findings else None


def _licensing(ctx: Context) -> tuple[list[Finding], list[Finding], set[str]]:
    """Licensing findings, notices, and the rights holders whose licence chains validly
    cover the goods on every date they are relied on."""
    ev = ctx.evidence
    shipment = ev.records[ev.shipment]
    destination = shipment.field("destination")
    findings: list[Finding] = []
    notices: list[Finding] = []
    if destination is None:
        findings.append(undisclosed_finding(shipment, "destination"))
    covered_by: set[str] = set()
    for uid in sorted(ctx.ancestors):
        production = ev.records[uid]
        if production.kind is not Kind.PRODUCTION:
            continue
        use = _Use(production, shipment, destination)
        licensed_assets: set[str] = set()
        for ref in production.refs:
            licence = ev.records.get(ref)
            if licence is None:
                findings.append(
                    Finding(
                        Reason.LICENCE_MISSING,
                        f"the production rests on {ref}, which is not in the evidence",
                        (production.uid,),
                    )
                )
                continue
            if licence.kind is not Kind.LICENCE:
                continue
            licence_findings, root = _licence_problems(ctx, licence, production.attester, use, notices)
            findings.extend(licence_findings)
            if root is not None:
                covered_by.add(root.lower())
            licensed_assets.update(licence.refs)
        embodied = production.field("embodies", [])
        for asset in embodied if isinstance(embodied, list) else []:
            if str(asset).lower() not in licensed_assets:
                findings.append(
                    Finding(Reason.LICENCE_MISSING, f"embodied IP asset {asset} has no licence", (production.uid,))
                )
    return findings, notices, covered_by


def licensing_once(ctx: Context) -> tuple[list[Finding], list[Finding], set[str]]:
    """The licensing analysis (findings, notices, rights holders whose licence chains
    validly cover the goods), computed once per verification and shared with the
    watch-list check."""
    if "licensing" not in ctx.memo:
        ctx.memo["licensing"] = _licensing(ctx)
    analysis: tuple[list[Finding], list[Finding], set[str]] = ctx.memo["licensing"]
    return analysis


def check_licensing(ctx: Context) -> CheckResult:
    findings, notices, _covered = licensing_once(ctx)
    return outcome("licensing", findings, notices)
