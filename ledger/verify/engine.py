"""The verification engine: eight checks over a shipment's evidence, one verdict.

Fail-closed by construction: the verdict starts from the set of checks the policy makes
mandatory, and a mandatory check that is missing, errored, or skipped can only give
UNVERIFIABLE. An empty evidence set gives UNVERIFIABLE, never VERIFIED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ledger.chain.view import ChainSnapshot, ChainView, RegistryAt
from ledger.eip712 import Domain, attestation_uid
from ledger.fields import FieldError, check_fields, exact_quantity
from ledger.hashing import parse_hex
from ledger.kinds import Kind
from ledger.merkle import verify_proof
from ledger.reasons import Reason
from ledger.signatures import SignatureChecker

from .evidence import Evidence, Record
from .model import CHECKS, EVIDENCE_FAILURES, CheckResult, CheckStatus, Finding, RiskFactor, Verdict, VerificationResult

CUSTODY_KINDS = (Kind.PRODUCTION, Kind.TRANSFER)
BENIGN_FINDINGS = frozenset({"CLEARED", "INSPECTED_OK", "RELEASED"})
MAX_LICENCE_DEPTH = 8

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
class VerificationPolicy:
    """Policy knobs, with safe defaults. Built once from the settings (`from_settings`)
    and handed to every verification path, so no path can ignore one."""

    confirmations: int = 2
    require_acceptance: bool = False
    mandatory: frozenset[str] = frozenset(CHECKS)

    def __post_init__(self) -> None:
        unknown = set(self.mandatory) - set(CHECKS)
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
        if self.confirmations < 1:
            raise ValueError(f"confirmations must be at least 1, got {self.confirmations}")

    @classmethod
    def from_settings(cls, settings: Any) -> VerificationPolicy:
        """The policy of `settings` (a `ledger.config.Settings`)."""
        return cls(settings.confirmations, settings.require_acceptance, frozenset(settings.mandatory_checks))


@dataclass(frozen=True)
class ShipmentHistory:
    """What the store knows of an exporter's earlier shipments (for risk signals)."""

    shipments: int
    destinations: frozenset[str]
    quantities: tuple[Fraction, ...]


class ChainFactsUnavailable(Exception):
    """The chain could not be read, so a fact a check needs is unknown."""


@dataclass
class Context:
    evidence: Evidence
    domain: Domain
    chain: ChainView | None
    snapshot: ChainSnapshot | None  # None: the chain could not be read (see chain_error)
    checker: SignatureChecker
    policy: VerificationPolicy
    now: int
    chain_error: str = ""
    ancestors: set[str] = field(default_factory=set)
    untrusted: set[str] = field(default_factory=set)  # records failing integrity or identity
    # (findings, notices, rights holders whose licence chains validly cover the goods), computed once
    licensing: tuple[list[Finding], list[Finding], set[str]] | None = None

    def trusted(self, record: Record) -> bool:
        return record.uid not in self.untrusted

    def chain_block_time(self, block: int) -> int:
        if self.chain is None:
            raise ChainFactsUnavailable("no chain configured")
        return self.chain.block_time(block)

    def require_snapshot(self) -> ChainSnapshot:
        if self.snapshot is None:
            raise ChainFactsUnavailable(f"the chain could not be read: {self.chain_error or 'no chain configured'}")
        return self.snapshot

    def revocations_of(self, record: Record) -> list[str]:
        """Revocations of `record` by its own attester, from the evidence and the chain.
        Only a record's attester may revoke it; anyone else's revocation is not counted.
        Raises ChainFactsUnavailable when the chain's revocations could not be read: an
        unknown revocation status is never "not revoked"."""
        attester = record.attester.lower()
        found = [
            r.uid
            for r in self.evidence.children(record.uid)
            if r.kind is Kind.REVOCATION and self.trusted(r) and r.attester.lower() == attester
        ]
        if attester in self.require_snapshot().revokers(record.uid):
            found.append(f"on-chain revocation by {record.attester}")
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


def _undisclosed(record: Record) -> int:
    """How many committed fields of `record` the evidence does not disclose."""
    return len(record.disclosure.field_hashes) - len(record.disclosure.fields)


# ---------------------------------------------------------------------------- checks


def check_integrity(ctx: Context) -> CheckResult:
    """Every record in the evidence — not only the shipment's history — must be what was
    signed: a watch-list entry, licence or revocation that no longer matches its
    signature is evidence of a corrupted store or an edited bundle, never silently
    dropped."""
    findings = [
        Finding(Reason.STORE_CORRUPTED, message, (uid,)) for uid, message in sorted(ctx.evidence.unreadable.items())
    ]
    for record in ctx.evidence.records.values():
        problem = _integrity_problem(ctx, record)
        if problem is not None:
            ctx.untrusted.add(record.uid)
            code, message = problem
            if record.uid not in ctx.ancestors:
                message = f"{record.kind.type_name} in the evidence: {message}"
            findings.append(Finding(code, message, (record.uid,)))
    return _result("integrity", findings)


def _integrity_problem(ctx: Context, record: Record) -> tuple[Reason, str] | None:
    if record.anchor and record.anchor.get("error"):
        return Reason.STORE_CORRUPTED, str(record.anchor["error"])
    if record.domain != ctx.domain:
        return (
            Reason.WRONG_DOMAIN,
            f"signed for chain {record.domain.chain_id} contract {record.domain.verifying_contract}, not this ledger",
        )
    uid = attestation_uid(record.attestation, record.domain)
    if "0x" + uid.hex() != record.uid:
        return Reason.UID_MISMATCH, f"the typed data hashes to 0x{uid.hex()}, not {record.uid}"
    try:
        result = ctx.checker.check_digest(uid, record.attester, record.signature)
    except Exception as exc:  # noqa: BLE001 - a wallet that cannot answer makes its own record untrusted
        return Reason.BAD_SIGNATURE, f"the signer's wallet did not answer the ERC-1271 check: {type(exc).__name__}"
    if not result.valid:
        return Reason.BAD_SIGNATURE, f"{result.problem.value if result.problem else 'invalid'}"
    problems = record.disclosure.problems(record.attestation.payload_hash)
    if problems:
        return Reason.PAYLOAD_MISMATCH, "; ".join(problems)
    try:
        check_fields(record.kind, record.disclosure, len(record.attestation.refs))
    except FieldError as exc:
        return Reason.FIELD_INVALID, str(exc)
    return None


def _anchor_time(ctx: Context, snapshot: ChainSnapshot, record: Record) -> int | None:
    """The chain time at which `record` was anchored, or None when it is not (yet)."""
    direct = snapshot.direct(record.uid)
    if direct is not None and direct[0] == record.attester.lower():
        return ctx.chain_block_time(direct[1])
    anchor = record.anchor or {}
    index, root = anchor.get("batchIndex"), anchor.get("root")
    if isinstance(index, int) and isinstance(root, str):
        on_chain = snapshot.batch(index)
        if on_chain is not None and on_chain[0] == root.lower():
            return ctx.chain_block_time(on_chain[1])
    return None


def check_identity(ctx: Context) -> CheckResult:
    """Registry standing at signing time, read from the chain. A signer chooses its
    `issuedAt`, so a record anchored more than the deployment's maximum signature age
    after its claimed signing time also needs its signer's standing at anchoring time:
    a key suspended, expired or rotated out cannot mint "earlier" records."""
    snapshot = ctx.require_snapshot()
    registry = RegistryAt(snapshot)
    findings: list[Finding] = []
    for record in ctx.evidence.records.values():
        needed = record.kind.required_roles
        signed = record.attestation.issued_at
        problem = registry.standing(record.attester, signed).allows(needed)
        why = f"{problem.info.meaning}" if problem is not None else ""
        if problem is None:
            anchored = _anchor_time(ctx, snapshot, record)
            anchored = ctx.now if anchored is None else anchored
            if anchored - signed > snapshot.max_signature_age:
                later = registry.standing(record.attester, anchored).allows(needed)
                if later is not None:
                    problem = Reason.SIGNATURE_TOO_OLD
                    why = (
                        f"anchored at {anchored}, {anchored - signed} s after its claimed signing time (more "
                        f"than the maximum signature age of {snapshot.max_signature_age} s), when the signer "
                        f"no longer had standing ({later.value})"
                    )
        if problem is not None:
            ctx.untrusted.add(record.uid)
            if record.uid in ctx.ancestors:
                findings.append(
                    Finding(problem, f"{record.kind.type_name} by {record.attester} at {signed}: {why}", (record.uid,))
                )
    return _result("identity", findings)


def check_anchoring(ctx: Context) -> CheckResult:
    snapshot = ctx.require_snapshot()
    findings: list[Finding] = []
    for uid in sorted(ctx.ancestors):
        record = ctx.evidence.records[uid]
        finding = _anchor_problem(ctx, snapshot, record)
        if finding is not None:
            findings.append(finding)
    return _result("anchoring", findings)


def _unconfirmed(snapshot: ChainSnapshot, block: int, confirmations: int, what: str, uid: str) -> Finding | None:
    have = snapshot.confirmations(block)
    if have < confirmations:
        return Finding(Reason.ANCHOR_UNCONFIRMED, f"{what} has {have} of {confirmations} confirmations", (uid,))
    return None


def _anchor_problem(ctx: Context, snapshot: ChainSnapshot, record: Record) -> Finding | None:
    anchor = record.anchor
    confirmations = ctx.policy.confirmations
    if not anchor:
        return Finding(Reason.NOT_ANCHORED, "not yet in an anchored batch", (record.uid,))
    if anchor.get("type") == "direct":
        direct = snapshot.direct(record.uid)
        if direct is None or direct[0] != record.attester.lower():
            return Finding(Reason.NOT_ANCHORED, "no direct record of it at the ledger contract", (record.uid,))
        return _unconfirmed(snapshot, direct[1], confirmations, "its direct record", record.uid)
    index, root, proof = anchor.get("batchIndex"), anchor.get("root"), anchor.get("proof") or []
    if not isinstance(index, int) or not isinstance(root, str) or not isinstance(proof, list):
        return Finding(Reason.NOT_ANCHORED, "batch sealed but not yet anchored", (record.uid,))
    if (
        anchor.get("txHash")
        and ctx.chain is not None
        and not ctx.chain.tx_emitted_by_ledger(str(anchor["txHash"]), index)
    ):
        return Finding(
            Reason.WRONG_CONTRACT,
            f"transaction {anchor['txHash']} did not anchor batch {index} at the "
            f"ledger contract {ctx.chain.ledger_address}",
            (record.uid,),
        )
    on_chain = snapshot.batch(index)
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
    return _unconfirmed(snapshot, on_chain[1], confirmations, f"batch {index}", record.uid)


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
    result = _result("status", findings)
    result.notices = notices
    return result


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


def _quantity(record: Record) -> Fraction | None:
    """The record's quantity as an exact number, or None when absent or not allowed."""
    return exact_quantity(record.field("quantity"))


def _undisclosed_finding(record: Record, name: str) -> Finding:
    return Finding(
        Reason.FIELD_UNDISCLOSED,
        f"the {record.kind.type_name}'s {name} is not disclosed in the evidence, so it cannot be checked",
        (record.uid,),
    )


def check_custody(ctx: Context) -> CheckResult:
    ev = ctx.evidence
    findings: list[Finding] = []
    shipment = ev.records[ev.shipment]
    cycle = _find_cycle(ev)
    if cycle:
        return _result(
            "custody", [Finding(Reason.CUSTODY_CYCLE, "the custody graph loops back on itself", tuple(cycle))]
        )
    nodes = [
        ev.records[u]
        for u in sorted(ctx.ancestors)
        if ev.records[u].kind in (Kind.TRANSFER, Kind.SHIPMENT, Kind.PRODUCTION)
    ]
    for node in nodes:
        if _quantity(node) is None:
            findings.append(_undisclosed_finding(node, "quantity"))
    # Continuity: every hand-over by the then-holder, back to a production.
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
    # The goods declared are the goods carried: a shipment cannot re-declare watch-listed
    # or unlicensed goods as another class.
    declared = shipment.field("goodsClass")
    if declared is None:
        findings.append(_undisclosed_finding(shipment, "goodsClass"))
    for node in nodes:
        if node.kind is Kind.PRODUCTION and declared is not None and node.field("goodsClass") != declared:
            findings.append(
                Finding(
                    Reason.GOODS_MISMATCH,
                    f"the shipment declares goods class {declared}, but it carries goods produced as "
                    f"{node.field('goodsClass')}",
                    (shipment.uid, node.uid),
                )
            )
    conservation, notices = _conservation(ctx)
    findings.extend(conservation)
    if shipment.kind is not Kind.SHIPMENT:
        findings.append(Finding(Reason.CUSTODY_GAP, "the evidence's subject is not a shipment", (shipment.uid,)))
    result = _result("custody", findings)
    result.notices = notices
    return result


def _entitled_consumer(ctx: Context, consumer: Record, inputs: list[str]) -> bool:
    """A hand-over or shipment counts against goods only when its signer held them."""
    return all(_holder_after(ctx.evidence.records[u]) == consumer.attester.lower() for u in inputs)


def _conservation(ctx: Context) -> tuple[list[Finding], list[Finding]]:
    """Quantities: what leaves a custody record never exceeds what it holds; two consumers
    that together take more than it holds are a fork (a double-spend of the goods).
    Only hand-overs signed by the goods' holder count; claims by anyone else are
    returned as notices on the claimant and do not touch the goods' verdict."""
    ev = ctx.evidence
    findings: list[Finding] = []
    notices: list[Finding] = []
    relevant = {u for u in ctx.ancestors if ev.records[u].kind in CUSTODY_KINDS}
    candidates: dict[str, Record] = {}
    for uid in relevant:
        for child in ev.children(uid):
            if child.kind in (Kind.TRANSFER, Kind.SHIPMENT):
                candidates[child.uid] = child
            elif child.kind is Kind.TRANSFER_ACCEPTANCE:  # consumers through an acceptance
                for grandchild in ev.children(child.uid):
                    if grandchild.kind in (Kind.TRANSFER, Kind.SHIPMENT):
                        candidates[grandchild.uid] = grandchild
    consumers: list[Record] = []
    for candidate in candidates.values():
        if not ctx.trusted(candidate) or ctx.revocations_of(candidate):
            continue
        inputs = [u for u in _custody_inputs(ctx, candidate) if u in relevant]
        if not _entitled_consumer(ctx, candidate, inputs):
            if candidate.uid not in ctx.ancestors:
                notices.append(
                    Finding(
                        Reason.NOT_ENTITLED,
                        f"{candidate.attester} signed a {candidate.kind.type_name} of goods it did not hold; "
                        "not counted against them",
                        (candidate.uid, *inputs),
                    )
                )
            continue
        consumers.append(candidate)
    remaining: dict[str, Fraction] = {u: _quantity(ev.records[u]) or Fraction(0) for u in relevant}
    takers: dict[str, list[str]] = {u: [] for u in relevant}
    reported: set[tuple[str, ...]] = set()
    for consumer in sorted(consumers, key=lambda r: (r.attestation.issued_at, r.uid)):
        wanted = _quantity(consumer) or Fraction(0)
        needed = wanted
        inputs = [u for u in _custody_inputs(ctx, consumer) if u in remaining]
        for u in inputs:
            take = min(needed, remaining[u])
            remaining[u] -= take
            needed -= take
            takers[u].append(consumer.uid)
        if needed > 0 and inputs:
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
                        f"{consumer.kind.type_name} moves {_number(wanted)} "
                        f"but only {_number(wanted - needed)} were held",
                        involved,
                    )
                )
    return findings, notices


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


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


@dataclass(frozen=True)
class _Use:
    """What a licence is relied on for: goods made by `producer` at `made`, shipped at
    `shipped` to `destination`."""

    production: Record
    shipment: Record
    destination: Any


def _licensed_output(ctx: Context, licence: Record, notices: list[Finding], depth: int = 0) -> Fraction:
    """What counts against `licence`'s cap: productions under it by its licensee, and
    (recursively) under sub-licences the licensee granted from it. Productions by anyone
    else are reported as notices on the claimant and do not count."""
    licensee = str(licence.field("licensee", "")).lower()
    total = Fraction(0)
    if depth > MAX_LICENCE_DEPTH:
        return total
    for child in ctx.evidence.children(licence.uid):
        if not ctx.trusted(child) or ctx.revocations_of(child):
            continue
        if child.kind is Kind.PRODUCTION:
            if child.attester.lower() == licensee:
                total += _quantity(child) or Fraction(0)
            else:
                notices.append(
                    Finding(
                        Reason.NOT_ENTITLED,
                        f"{child.attester} claims a production under a licence granted to {licensee}; "
                        "not counted against its cap",
                        (child.uid, licence.uid),
                    )
                )
        elif child.kind is Kind.LICENCE and child.attester.lower() == licensee:
            total += _licensed_output(ctx, child, notices, depth + 1)
    return total


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
    if _undisclosed(licence):
        # A hidden field could be its quantity cap or its sub-licensing terms.
        return [
            Finding(
                Reason.FIELD_UNDISCLOSED,
                f"the licence keeps {_undisclosed(licence)} committed field(s) undisclosed: "
                "its terms cannot be checked",
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
    if not _covers_goods(licence.field("goodsClasses"), production.field("goodsClass")):
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
        produced = _licensed_output(ctx, licence, notices)
        if produced > cap:
            findings.append(
                Finding(
                    Reason.LICENCE_QUANTITY,
                    f"{_number(produced)} produced under a licence capped at {_number(cap)}",
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
        findings.append(_undisclosed_finding(shipment, "destination"))
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


def _licensing_once(ctx: Context) -> tuple[list[Finding], list[Finding], set[str]]:
    """The licensing analysis, shared by the licensing and the watch-list checks."""
    if ctx.licensing is None:
        ctx.licensing = _licensing(ctx)
    return ctx.licensing


def check_licensing(ctx: Context) -> CheckResult:
    findings, notices, _covered = _licensing_once(ctx)
    result = _result("licensing", findings)
    result.notices = list(notices)
    return result


def check_watchlist(ctx: Context) -> CheckResult:
    ev = ctx.evidence
    shipment = ev.records[ev.shipment]
    goods, destination = shipment.field("goodsClass"), shipment.field("destination")
    if goods is None or destination is None:
        return _result("watchlist", [_undisclosed_finding(shipment, "goodsClass" if goods is None else "destination")])
    _licensing_findings, _notices, covered_by = _licensing_once(ctx)
    findings = []
    for entry in ev.of_kind(Kind.WATCHLIST):
        if not ctx.trusted(entry) or ctx.revocations_of(entry):
            continue
        if entry.attestation.expires_at and entry.attestation.expires_at <= ctx.now:
            continue
        if not _covers_goods(entry.field("goodsClasses"), goods):
            continue
        territories = entry.field("territories")
        # A hidden field may be the territories: an entry that keeps fields back is read
        # as covering every destination (it can only widen the watch list).
        if not _undisclosed(entry) and isinstance(territories, list) and destination not in territories:
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
    checker: SignatureChecker,
    policy: VerificationPolicy,
    history: ShipmentHistory | None = None,
    now: int | None = None,
) -> VerificationResult:
    """Run every check over `evidence` and return the verdict, findings and risk score.

    Every on-chain fact comes from one snapshot of `chain`, read once here; if it cannot
    be read, every check that needs the chain is an ERROR (so the verdict cannot be
    VERIFIED)."""
    snapshot: ChainSnapshot | None = None
    chain_error = ""
    if chain is not None:
        try:
            snapshot = chain.snapshot()
            if _claims_beyond(snapshot, evidence):
                snapshot = chain.snapshot(max_age=0)  # anchored a moment ago: read the head again
        except Exception as exc:  # noqa: BLE001 - any chain failure means the facts are unknown
            chain_error = f"{type(exc).__name__}: {exc}"
    ctx = Context(
        evidence, domain, chain, snapshot, checker, policy, int(time.time()) if now is None else now, chain_error
    )
    ctx.ancestors = _ancestors(evidence)
    checks: list[CheckResult] = []
    for name in CHECKS:
        try:
            checks.append(CHECK_FUNCTIONS[name](ctx))
        except ChainFactsUnavailable as exc:
            checks.append(CheckResult(name, CheckStatus.ERROR, [Finding(Reason.CHAIN_UNAVAILABLE, str(exc))], str(exc)))
        except Exception as exc:  # noqa: BLE001 - a crashing check is an ERROR, never a pass
            checks.append(CheckResult(name, CheckStatus.ERROR, detail=f"{type(exc).__name__}: {exc}"))
    verdict = decide(checks, policy)
    score, factors = risk(checks, evidence, history)
    expiries = [r.attestation.expires_at for r in evidence.records.values() if r.attestation.expires_at > ctx.now]
    return VerificationResult(
        evidence.shipment,
        verdict,
        score,
        checks,
        factors,
        ctx.now,
        float(min(expiries)) if expiries else float("inf"),
        snapshot.head if snapshot is not None else -1,
    )


def _claims_beyond(snapshot: ChainSnapshot, evidence: Evidence) -> bool:
    """True when a record claims an anchor the snapshot does not hold (yet)."""
    for record in evidence.records.values():
        anchor = record.anchor or {}
        if anchor.get("type") == "direct" and snapshot.direct(record.uid) is None:
            return True
        index = anchor.get("batchIndex")
        if isinstance(index, int) and snapshot.batch(index) is None:
            return True
    return False


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
            shipped = _quantity(shipment) or Fraction(0)
            if typical > 0 and shipped > 3 * typical:
                factors.append(
                    RiskFactor(
                        "QUANTITY_SPIKE",
                        10,
                        f"quantity {_number(shipped)} is over 3x this exporter's typical {_number(typical)}",
                    )
                )
    return min(100, sum(f.points for f in factors)), factors
