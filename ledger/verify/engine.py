"""The verification engine: eight checks over a shipment's evidence, one verdict.

Fail-closed by construction: the verdict starts from the set of checks the policy makes
mandatory, and a mandatory check that is missing, errored, or skipped can only give
UNVERIFIABLE. An empty evidence set gives UNVERIFIABLE, never VERIFIED.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.eip712 import Domain, attestation_uid
from ledger.hashing import parse_hex
from ledger.kinds import Kind
from ledger.merkle import verify_proof
from ledger.reasons import Reason
from ledger.registry_view import RegistryView
from ledger.signatures import SignatureChecker

from .chainview import ChainView
from .evidence import Evidence, Record
from .model import EVIDENCE_FAILURES, CheckResult, CheckStatus, Finding, RiskFactor, Verdict, VerificationResult

CHECKS = ("integrity", "identity", "anchoring", "status", "custody", "licensing", "watchlist", "prior_findings")
CUSTODY_KINDS = (Kind.PRODUCTION, Kind.TRANSFER)
BENIGN_FINDINGS = frozenset({"CLEARED", "INSPECTED_OK", "RELEASED"})

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
}


@dataclass(frozen=True)
class VerificationPolicy:
    """Policy knobs, with safe defaults. From the environment with `from_env()`."""

    confirmations: int = 2
    require_acceptance: bool = False
    mandatory: frozenset[str] = frozenset(CHECKS)

    @classmethod
    def from_env(cls) -> VerificationPolicy:
        confirmations = int(os.environ.get("PROVENANCE_CONFIRMATIONS", "2"))
        acceptance = os.environ.get("PROVENANCE_REQUIRE_ACCEPTANCE", "false").lower() in ("1", "true", "yes")
        raw = os.environ.get("PROVENANCE_MANDATORY_CHECKS")
        mandatory = frozenset(c.strip() for c in raw.split(",") if c.strip()) if raw else frozenset(CHECKS)
        unknown = mandatory - set(CHECKS)
        if unknown:
            raise ValueError(f"PROVENANCE_MANDATORY_CHECKS: unknown checks {sorted(unknown)}; known: {CHECKS}")
        return cls(confirmations, acceptance, mandatory)


@dataclass(frozen=True)
class ShipmentHistory:
    """What the store knows of an exporter's earlier shipments (for risk signals)."""

    shipments: int
    destinations: frozenset[str]
    quantities: tuple[float, ...]


@dataclass
class Context:
    evidence: Evidence
    domain: Domain
    chain: ChainView | None
    registry: RegistryView | None
    refresh_registry: Callable[[int], None] | None
    checker: SignatureChecker
    policy: VerificationPolicy
    now: int
    ancestors: set[str] = field(default_factory=set)
    untrusted: set[str] = field(default_factory=set)  # records failing integrity or identity
    # (findings, rights holders whose licence chains validly cover the goods), computed once
    licensing: tuple[list[Finding], set[str]] | None = None

    def trusted(self, record: Record) -> bool:
        return record.uid not in self.untrusted

    def revocations_of(self, record: Record) -> list[str]:
        """Revocations of `record` by its own attester, from the evidence and the chain."""
        found = [
            r.uid
            for r in self.evidence.children(record.uid)
            if r.kind is Kind.REVOCATION and self.trusted(r) and r.attester == record.attester
        ]
        for revoker in self.evidence.chain_revocations.get(record.uid, set()):
            if revoker.lower() == record.attester.lower():
                found.append(f"on-chain revocation by {revoker}")
        return found


def _ancestors(evidence: Evidence) -> set[str]:
    seen: set[str] = set()
    frontier = [evidence.shipment]
    while frontier:
        uid = frontier.pop()
        if uid in seen or uid not in evidence.records:
            continue
        seen.add(uid)
        frontier.extend(evidence.records[uid].refs)
    return seen


# ---------------------------------------------------------------------------- checks


def check_integrity(ctx: Context) -> CheckResult:
    findings: list[Finding] = []
    for record in ctx.evidence.records.values():
        problem = _integrity_problem(ctx, record)
        if problem is not None:
            ctx.untrusted.add(record.uid)
            if record.uid in ctx.ancestors:
                findings.append(Finding(problem[0], problem[1], (record.uid,)))
    return _result("integrity", findings)


def _integrity_problem(ctx: Context, record: Record) -> tuple[Reason, str] | None:
    if record.domain != ctx.domain:
        return (
            Reason.WRONG_DOMAIN,
            f"signed for chain {record.domain.chain_id} contract {record.domain.verifying_contract}, not this ledger",
        )
    uid = attestation_uid(record.attestation, record.domain)
    if "0x" + uid.hex() != record.uid:
        return Reason.UID_MISMATCH, f"the typed data hashes to 0x{uid.hex()}, not {record.uid}"
    result = ctx.checker.check_digest(uid, record.attester, record.signature)
    if not result.valid:
        return Reason.BAD_SIGNATURE, f"{result.problem.value if result.problem else 'invalid'}"
    problems = record.disclosure.problems(record.attestation.payload_hash)
    if problems:
        return Reason.PAYLOAD_MISMATCH, "; ".join(problems)
    return None


def check_identity(ctx: Context) -> CheckResult:
    if ctx.registry is None:
        return CheckResult("identity", CheckStatus.ERROR, detail="no registry history available")
    if ctx.refresh_registry is not None:
        latest = max(r.attestation.issued_at for r in ctx.evidence.records.values())
        try:
            ctx.refresh_registry(latest)
        except Exception as exc:  # noqa: BLE001 - the chain is the source of truth for roles
            return CheckResult(
                "identity", CheckStatus.ERROR, [Finding(Reason.CHAIN_UNAVAILABLE, f"registry not readable: {exc}")]
            )
    findings: list[Finding] = []
    for record in ctx.evidence.records.values():
        standing = ctx.registry.standing(record.attester, record.attestation.issued_at)
        problem = standing.allows(record.kind.required_roles)
        if problem is not None:
            ctx.untrusted.add(record.uid)
            if record.uid in ctx.ancestors:
                findings.append(
                    Finding(
                        problem,
                        f"{record.kind.type_name} by {record.attester} at "
                        f"{record.attestation.issued_at}: {problem.info.meaning}",
                        (record.uid,),
                    )
                )
    return _result("identity", findings)


def check_anchoring(ctx: Context) -> CheckResult:
    if ctx.chain is None:
        return CheckResult("anchoring", CheckStatus.ERROR, [Finding(Reason.CHAIN_UNAVAILABLE, "no chain configured")])
    findings: list[Finding] = []
    try:
        head = ctx.chain.head()
        for uid in sorted(ctx.ancestors):
            record = ctx.evidence.records[uid]
            finding = _anchor_problem(ctx.chain, record, head, ctx.policy.confirmations)
            if finding is not None:
                findings.append(finding)
    except Exception as exc:  # noqa: BLE001 - any chain failure means we could not check
        return CheckResult("anchoring", CheckStatus.ERROR, [Finding(Reason.CHAIN_UNAVAILABLE, str(exc))])
    return _result("anchoring", findings)


def _anchor_problem(chain: ChainView, record: Record, head: int, confirmations: int) -> Finding | None:
    anchor = record.anchor
    if not anchor:
        return Finding(Reason.NOT_ANCHORED, "not yet in an anchored batch", (record.uid,))
    if anchor.get("type") == "direct":
        attester, _revoked_at = chain.direct_record(record.uid)
        if attester.lower() != record.attester.lower():
            return Finding(Reason.NOT_ANCHORED, "no direct record of it at the ledger contract", (record.uid,))
        return None
    index, root, proof = anchor.get("batchIndex"), anchor.get("root"), anchor.get("proof") or []
    if not isinstance(index, int) or not isinstance(root, str):
        return Finding(Reason.NOT_ANCHORED, "batch sealed but not yet anchored", (record.uid,))
    if anchor.get("txHash") and not chain.tx_emitted_by_ledger(str(anchor["txHash"]), index):
        return Finding(
            Reason.WRONG_CONTRACT,
            f"transaction {anchor['txHash']} did not anchor batch {index} at the "
            f"ledger contract {chain.ledger_address}",
            (record.uid,),
        )
    on_chain = chain.batch(index)
    if on_chain is None or on_chain[0] != root.lower():
        return Finding(Reason.NOT_ANCHORED, f"batch {index} root {root} is not on chain", (record.uid,))
    try:
        ok = verify_proof(
            parse_hex(root, 32, "root"), parse_hex(record.uid, 32, "uid"), [parse_hex(p, 32, "proof") for p in proof]
        )
    except ValueError:
        ok = False
    if not ok:
        return Finding(Reason.NOT_ANCHORED, f"the inclusion proof does not lead to batch {index}'s root", (record.uid,))
    block = on_chain[1]
    if head - block + 1 < confirmations:
        return Finding(
            Reason.ANCHOR_UNCONFIRMED,
            f"batch {index} has {head - block + 1} of {confirmations} confirmations",
            (record.uid,),
        )
    return None


def check_status(ctx: Context) -> CheckResult:
    findings: list[Finding] = []
    for uid in sorted(ctx.ancestors):
        record = ctx.evidence.records[uid]
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
    return _result("status", findings)


def _custody_inputs(ctx: Context, record: Record) -> list[str]:
    """The custody records (productions, transfers) `record` hands on; acceptances resolve
    to the transfer they accept. Unknown references are returned as-is (gaps)."""
    inputs = []
    for ref in record.refs:
        target = ctx.evidence.records.get(ref)
        if target is None:
            inputs.append(ref)
        elif target.kind is Kind.TRANSFER_ACCEPTANCE:
            inputs.extend(target.refs)
        elif target.kind in CUSTODY_KINDS:
            inputs.append(ref)
    return inputs


def _holder_after(record: Record) -> str:
    if record.kind is Kind.TRANSFER:
        return str(record.field("to", "")).lower()
    return record.attester.lower()


def _quantity(record: Record) -> float:
    value = record.field("quantity", 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def check_custody(ctx: Context) -> CheckResult:
    ev = ctx.evidence
    findings: list[Finding] = []
    shipment = ev.records[ev.shipment]
    cycle = _find_cycle(ev)
    if cycle:
        return _result(
            "custody", [Finding(Reason.CUSTODY_CYCLE, "the custody graph loops back on itself", tuple(cycle))]
        )
    # Continuity: every hand-over by the then-holder, back to a production.
    nodes = [
        ev.records[u]
        for u in sorted(ctx.ancestors)
        if ev.records[u].kind in (Kind.TRANSFER, Kind.SHIPMENT, Kind.PRODUCTION)
    ]
    for node in nodes:
        if node.kind is Kind.PRODUCTION:
            continue
        inputs = _custody_inputs(ctx, node)
        if not inputs:
            findings.append(
                Finding(Reason.CUSTODY_GAP, f"{node.kind.type_name} names no goods it took over", (node.uid,))
            )
        for input_uid in inputs:
            source = ev.records.get(input_uid)
            if source is None:
                findings.append(
                    Finding(
                        Reason.CUSTODY_GAP,
                        f"{node.kind.type_name} rests on {input_uid}, which is not in the evidence",
                        (node.uid,),
                    )
                )
                continue
            if _holder_after(source) != node.attester.lower():
                findings.append(
                    Finding(
                        Reason.CUSTODY_GAP,
                        f"{node.attester} hands on goods held by {_holder_after(source) or 'nobody'}",
                        (node.uid, source.uid),
                    )
                )
            if node.attestation.issued_at < source.attestation.issued_at:
                findings.append(
                    Finding(
                        Reason.TIME_INCONSISTENT,
                        f"{node.kind.type_name} is dated before the {source.kind.type_name} it depends on",
                        (node.uid, source.uid),
                    )
                )
            if (
                ctx.policy.require_acceptance
                and source.kind is Kind.TRANSFER
                and not any(
                    c.kind is Kind.TRANSFER_ACCEPTANCE
                    and ctx.trusted(c)
                    and c.attester.lower() == _holder_after(source)
                    for c in ev.children(source.uid)
                )
            ):
                findings.append(Finding(Reason.CUSTODY_GAP, "hand-over not accepted by its recipient", (source.uid,)))
    findings.extend(_conservation(ctx))
    if shipment.kind is not Kind.SHIPMENT:
        findings.append(Finding(Reason.CUSTODY_GAP, "the evidence's subject is not a shipment", (shipment.uid,)))
    return _result("custody", findings)


def _conservation(ctx: Context) -> list[Finding]:
    """Quantities: what leaves a custody record never exceeds what it holds; two consumers
    that together take more than it holds are a fork (a double-spend of the goods)."""
    ev = ctx.evidence
    findings: list[Finding] = []
    relevant = {u for u in ctx.ancestors if ev.records[u].kind in CUSTODY_KINDS}
    consumers: dict[str, Record] = {}
    for uid in relevant:
        for child in ev.children(uid):
            if child.kind in (Kind.TRANSFER, Kind.SHIPMENT) and ctx.trusted(child) and not ctx.revocations_of(child):
                consumers[child.uid] = child
        for child in ev.children(uid):  # consumers through an acceptance
            if child.kind is Kind.TRANSFER_ACCEPTANCE:
                for grandchild in ev.children(child.uid):
                    if grandchild.kind in (Kind.TRANSFER, Kind.SHIPMENT) and ctx.trusted(grandchild):
                        consumers[grandchild.uid] = grandchild
    remaining = {u: _quantity(ev.records[u]) for u in relevant}
    takers: dict[str, list[str]] = {u: [] for u in relevant}
    reported: set[tuple[str, ...]] = set()
    for consumer in sorted(consumers.values(), key=lambda r: (r.attestation.issued_at, r.uid)):
        needed = _quantity(consumer)
        inputs = [u for u in _custody_inputs(ctx, consumer) if u in remaining]
        for u in inputs:
            take = min(needed, remaining[u])
            remaining[u] -= take
            needed -= take
            takers[u].append(consumer.uid)
        if needed > 1e-9 and inputs:
            others = sorted({t for u in inputs for t in takers[u]} - {consumer.uid})
            involved = tuple([*inputs, consumer.uid, *others])
            if involved in reported:
                continue
            reported.add(involved)
            if others:
                findings.append(
                    Finding(
                        Reason.CUSTODY_FORK,
                        f"the same goods are handed on more than once "
                        f"({len(others) + 1} hand-overs exceed the quantity)",
                        involved,
                    )
                )
            else:
                findings.append(
                    Finding(
                        Reason.QUANTITY_EXCEEDED,
                        f"{consumer.kind.type_name} moves "
                        f"{_quantity(consumer):g} but only "
                        f"{_quantity(consumer) - needed:g} were held",
                        involved,
                    )
                )
    return findings


def _find_cycle(ev: Evidence) -> list[str]:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(uid: str) -> list[str]:
        colour[uid] = 1
        stack.append(uid)
        record = ev.records.get(uid)
        for ref in record.refs if record else []:
            if colour.get(ref) == 1:
                return stack[stack.index(ref) :]
            if ref not in colour:
                found = visit(ref)
                if found:
                    return found
        stack.pop()
        colour[uid] = 2
        return []

    return visit(ev.shipment)


def _covers_goods(classes: Any, goods: Any) -> bool:
    return (
        isinstance(classes, list)
        and isinstance(goods, str)
        and any(isinstance(c, str) and goods.startswith(c) for c in classes)
    )


def _licence_problems(
    ctx: Context, licence: Record, licensee: str, production: Record, destination: Any, depth: int = 0
) -> tuple[list[Finding], str | None]:
    """Findings for one licence in a chain, and the rights holder at its root (if valid)."""
    findings: list[Finding] = []
    if depth > 8:
        return [Finding(Reason.LICENCE_MISSING, "licence chain too deep", (licence.uid,))], None
    ids = (licence.uid, production.uid)
    if str(licence.field("licensee", "")).lower() != licensee.lower():
        findings.append(
            Finding(
                Reason.LICENCE_MISSING, f"licence is granted to {licence.field('licensee')}, not to {licensee}", ids
            )
        )
    if ctx.revocations_of(licence):
        findings.append(Finding(Reason.LICENCE_REVOKED, "the licence was revoked by its licensor", ids))
    made = production.attestation.issued_at
    valid_from, valid_until = licence.field("validFrom", 0), licence.field("validUntil", 0)
    expires = licence.attestation.expires_at
    if not (isinstance(valid_from, int) and isinstance(valid_until, int) and valid_from <= made <= valid_until) or (
        expires and expires <= made
    ):
        findings.append(Finding(Reason.LICENCE_EXPIRED, f"the licence was not valid at production ({made})", ids))
    if not _covers_goods(licence.field("goodsClasses"), production.field("goodsClass")):
        findings.append(
            Finding(
                Reason.LICENCE_GOODS, f"goods class {production.field('goodsClass')} is not covered by the licence", ids
            )
        )
    territories = licence.field("territories")
    if destination is not None and not (isinstance(territories, list) and destination in territories):
        findings.append(
            Finding(
                Reason.LICENCE_TERRITORY,
                f"destination {destination} is outside the licence's territories {territories}",
                ids,
            )
        )
    cap = licence.field("quantityCap")
    if isinstance(cap, int | float) and not isinstance(cap, bool):
        produced = sum(
            _quantity(c)
            for c in ctx.evidence.children(licence.uid)
            if c.kind is Kind.PRODUCTION and ctx.trusted(c) and not ctx.revocations_of(c)
        )
        if produced > cap:
            findings.append(
                Finding(Reason.LICENCE_QUANTITY, f"{produced:g} produced under a licence capped at {cap:g}", ids)
            )
    # Upwards: the licensor must be the rights holder of the asset, or a permitted sub-licensor.
    root: str | None = None
    for ref in licence.refs:
        parent = ctx.evidence.records.get(ref)
        if parent is None or not ctx.trusted(parent):
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
            sub_findings, sub_root = _licence_problems(
                ctx, parent, licence.attester, production, destination, depth + 1
            )
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


def _licensing(ctx: Context) -> tuple[list[Finding], set[str]]:
    """Licensing findings and the rights holders whose licence chains validly cover the goods."""
    ev = ctx.evidence
    destination = ev.records[ev.shipment].field("destination")
    findings: list[Finding] = []
    covered_by: set[str] = set()
    for uid in sorted(ctx.ancestors):
        production = ev.records[uid]
        if production.kind is not Kind.PRODUCTION:
            continue
        licences = [ev.records[r] for r in production.refs if r in ev.records and ev.records[r].kind is Kind.LICENCE]
        licensed_assets: set[str] = set()
        for licence in licences:
            licence_findings, root = _licence_problems(ctx, licence, production.attester, production, destination)
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
    return findings, covered_by


def _licensing_once(ctx: Context) -> tuple[list[Finding], set[str]]:
    """The licensing analysis, shared by the licensing and the watch-list checks."""
    if ctx.licensing is None:
        ctx.licensing = _licensing(ctx)
    return ctx.licensing


def check_licensing(ctx: Context) -> CheckResult:
    findings, _covered = _licensing_once(ctx)
    return _result("licensing", findings)


def check_watchlist(ctx: Context) -> CheckResult:
    ev = ctx.evidence
    shipment = ev.records[ev.shipment]
    goods, destination = shipment.field("goodsClass"), shipment.field("destination")
    _licensing_findings, covered_by = _licensing_once(ctx)
    findings = []
    for entry in ev.of_kind(Kind.WATCHLIST):
        if not ctx.trusted(entry) or ctx.revocations_of(entry):
            continue
        if entry.attestation.expires_at and entry.attestation.expires_at <= ctx.now:
            continue
        if not _covers_goods(entry.field("goodsClasses"), goods):
            continue
        territories = entry.field("territories")
        if isinstance(territories, list) and destination not in territories:
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
    return _result("watchlist", findings)


def check_prior_findings(ctx: Context) -> CheckResult:
    findings = []
    notes = []
    for uid in sorted(ctx.ancestors):
        for child in ctx.evidence.children(uid):
            if child.kind is not Kind.CUSTOMS_FINDING or not ctx.trusted(child) or ctx.revocations_of(child):
                continue
            code = str(child.field("finding", ""))
            if code in BENIGN_FINDINGS:
                notes.append(f"{code} by {child.attester}")
            else:
                findings.append(
                    Finding(Reason.PRIOR_FINDING, f"customs finding {code} by {child.attester}", (child.uid, uid))
                )
    result = _result("prior_findings", findings)
    result.detail = "; ".join(notes)
    return result


CHECK_FUNCTIONS: dict[str, Callable[[Context], CheckResult]] = {
    "integrity": check_integrity,
    "identity": check_identity,
    "anchoring": check_anchoring,
    "status": check_status,
    "custody": check_custody,
    "licensing": check_licensing,
    "watchlist": check_watchlist,
    "prior_findings": check_prior_findings,
}


def _result(name: str, findings: list[Finding]) -> CheckResult:
    return CheckResult(name, CheckStatus.INVALID if findings else CheckStatus.VALID, findings)


# ---------------------------------------------------------------------------- verdict


def verify_evidence(
    evidence: Evidence,
    *,
    domain: Domain,
    chain: ChainView | None,
    registry: RegistryView | None,
    checker: SignatureChecker,
    policy: VerificationPolicy | None = None,
    refresh_registry: Callable[[int], None] | None = None,
    history: ShipmentHistory | None = None,
    now: int | None = None,
) -> VerificationResult:
    """Run every check over `evidence` and return the verdict, findings and risk score."""
    policy = policy or VerificationPolicy()
    ctx = Context(
        evidence, domain, chain, registry, refresh_registry, checker, policy, int(time.time()) if now is None else now
    )
    ctx.ancestors = _ancestors(evidence)
    checks: list[CheckResult] = []
    for name in CHECKS:
        try:
            checks.append(CHECK_FUNCTIONS[name](ctx))
        except Exception as exc:  # noqa: BLE001 - a crashing check is an ERROR, never a pass
            checks.append(CheckResult(name, CheckStatus.ERROR, detail=f"{type(exc).__name__}: {exc}"))
    verdict = decide(checks, policy)
    score, factors = risk(checks, evidence, history)
    expiries = [r.attestation.expires_at for r in evidence.records.values() if r.attestation.expires_at > ctx.now]
    return VerificationResult(
        evidence.shipment, verdict, score, checks, factors, ctx.now, float(min(expiries)) if expiries else float("inf")
    )


def decide(checks: list[CheckResult], policy: VerificationPolicy) -> Verdict:
    """The verdict. Fail-closed: VERIFIED needs every mandatory check present and VALID;
    an empty policy or an empty set of checks never verifies."""
    by_name = {c.name: c for c in checks}
    if not policy.mandatory or not checks:
        return Verdict.UNVERIFIABLE
    for name in policy.mandatory:
        check = by_name.get(name)
        if check is None or check.status in (CheckStatus.ERROR, CheckStatus.SKIPPED):
            return Verdict.UNVERIFIABLE
    codes = {f.code for c in checks for f in c.findings}
    if codes & EVIDENCE_FAILURES:
        return Verdict.UNVERIFIABLE
    if any(c.status is CheckStatus.INVALID for c in checks):
        return Verdict.FLAGGED
    return Verdict.VERIFIED


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
            if typical > 0 and _quantity(shipment) > 3 * typical:
                factors.append(
                    RiskFactor(
                        "QUANTITY_SPIKE",
                        10,
                        f"quantity {_quantity(shipment):g} is over 3x this exporter's typical {typical:g}",
                    )
                )
    return min(100, sum(f.points for f in factors)), factors
