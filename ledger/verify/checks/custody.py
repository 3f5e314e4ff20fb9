"""Check 5, custody: continuous from production to the exporter, hand-overs by the
holder, quantities conserved, no forks or cycles, the goods declared are the goods carried."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ledger.kinds import Kind
from ledger.reasons import Reason

from ..context import (
    CUSTODY_KINDS,
    Context,
    custody_inputs,
    holder_after,
    number,
    outcome,
    quantity,
    undisclosed_finding,
)
from ..evidence import Evidence, Record
from ..model import CheckResult, Finding
from ..parties import party


def check_custody(ctx: Context) -> CheckResult:
    ev = ctx.evidence
    findings: list[Finding] = []
    shipment = ev.records[ev.shipment]
    cycle = _find_cycle(ev)
    if cycle:
        return outcome(
            "custody", [Finding(Reason.CUSTODY_CYCLE, "the custody graph loops back on itself", tuple(cycle))]
        )
    nodes = [
        ev.records[u]
        for u in sorted(ctx.ancestors)
        if ev.records[u].kind in (Kind.TRANSFER, Kind.SHIPMENT, Kind.PRODUCTION)
    ]
    for node in nodes:
        if quantity(node) is None:
            findings.append(undisclosed_finding(node, "quantity"))
    # Continuity: every hand-over by the then-holder, back to a production.
    for node in nodes:
        if node.kind is Kind.PRODUCTION:
            continue
        inputs = custody_inputs(ctx, node)
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
            if holder_after(source) != node.attester.lower():
                holder = holder_after(source)
                findings.append(
                    Finding(
                        Reason.CUSTODY_GAP,
                        f"{party(ctx.snapshot, node.attester)} hands on goods held by "
                        f"{party(ctx.snapshot, holder) if holder else 'nobody'}",
                        (node.uid, source.uid),
                        {
                            "by": party(ctx.snapshot, node.attester).to_json(),
                            "holder": party(ctx.snapshot, holder).to_json() if holder else None,
                        },
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
                    c.kind is Kind.TRANSFER_ACCEPTANCE and ctx.trusted(c) and c.attester.lower() == holder_after(source)
                    for c in ev.children(source.uid)
                )
            ):
                findings.append(Finding(Reason.CUSTODY_GAP, "hand-over not accepted by its recipient", (source.uid,)))
    # The goods declared are the goods carried: a shipment cannot re-declare watch-listed
    # or unlicensed goods as another class.
    declared = shipment.field("goodsClass")
    if declared is None:
        findings.append(undisclosed_finding(shipment, "goodsClass"))
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
    result = outcome("custody", findings)
    result.notices = notices
    return result


def _entitled_consumer(ctx: Context, consumer: Record, inputs: list[str]) -> bool:
    """A hand-over or shipment counts against goods only when its signer held them."""
    return all(holder_after(ctx.evidence.records[u]) == consumer.attester.lower() for u in inputs)


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
        # Only a revocation the chain holds takes another consumer of the lot out.
        if not ctx.trusted(candidate) or ctx.revocations_of(candidate, anchored=True):
            continue
        inputs = [u for u in custody_inputs(ctx, candidate) if u in relevant]
        if not _entitled_consumer(ctx, candidate, inputs):
            if candidate.uid not in ctx.ancestors:
                notices.append(
                    Finding(
                        Reason.NOT_ENTITLED,
                        f"{party(ctx.snapshot, candidate.attester)} signed a {candidate.kind.type_name} "
                        "of goods it did not hold; not counted against them",
                        (candidate.uid, *inputs),
                        {"by": party(ctx.snapshot, candidate.attester).to_json()},
                    )
                )
            continue
        consumers.append(candidate)
    remaining: dict[str, Fraction] = {u: quantity(ev.records[u]) or Fraction(0) for u in relevant}
    takers: dict[str, list[str]] = {u: [] for u in relevant}
    reported: set[tuple[str, ...]] = set()
    for consumer in sorted(consumers, key=lambda r: (r.attestation.issued_at, r.uid)):
        wanted = quantity(consumer) or Fraction(0)
        needed = wanted
        inputs = [u for u in custody_inputs(ctx, consumer) if u in remaining]
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
            lots = _lots(ctx, inputs)
            if others:
                hand_overs = sorted(
                    [ev.records[t] for t in others] + [consumer], key=lambda r: (r.attestation.issued_at, r.uid)
                )
                handed = sum((quantity(r) or Fraction(0) for r in hand_overs), Fraction(0))
                findings.append(
                    Finding(
                        Reason.CUSTODY_FORK,
                        f"the same goods are handed on more than once: {lots['text']} holds {lots['quantity']}, "
                        f"but {len(hand_overs)} hand-overs of it move {number(handed)} in all "
                        f"({'; '.join(_hand_over(ctx, r) for r in hand_overs)}); "
                        f"{number(needed)} of the last one's {number(wanted)} were never held",
                        involved,
                        {
                            "lots": lots["lots"],
                            "lotQuantity": lots["quantity"],
                            "handOvers": [_hand_over_json(ctx, r) for r in hand_overs],
                            "handedOver": number(handed),
                            "shortfall": number(needed),
                        },
                    )
                )
            else:
                findings.append(
                    Finding(
                        Reason.QUANTITY_EXCEEDED,
                        f"{_hand_over(ctx, consumer)} moves {number(wanted)} but {lots['text']} held "
                        f"only {number(wanted - needed)} ({lots['quantity']} in all)",
                        involved,
                        {
                            "lots": lots["lots"],
                            "lotQuantity": lots["quantity"],
                            "handOvers": [_hand_over_json(ctx, consumer)],
                            "handedOver": number(wanted),
                            "shortfall": number(needed),
                        },
                    )
                )
    return findings, notices


def _short(uid: str) -> str:
    return uid[:10] + "…"


def _lots(ctx: Context, inputs: list[str]) -> dict[str, Any]:
    """The goods a hand-over draws on: each lot (production or transfer) with its quantity,
    their total, and how to name them in a sentence."""
    records = [ctx.evidence.records[u] for u in inputs]
    total = sum((quantity(r) or Fraction(0) for r in records), Fraction(0))
    named = ", ".join(f"{r.kind.type_name} {_short(r.uid)}" for r in records)
    return {
        "lots": [
            {"uid": r.uid, "kind": r.kind.type_name, "quantity": number(quantity(r) or Fraction(0))} for r in records
        ],
        "quantity": number(total),
        "text": ("the lot " if len(records) == 1 else "the lots ") + named,
    }


def _hand_over(ctx: Context, record: Record) -> str:
    """What, how much, by whom: `Transfer 0x1234abcd… of 60 by ACME Ltd (0x…)`."""
    return (
        f"{record.kind.type_name} {_short(record.uid)} of {number(quantity(record) or Fraction(0))} "
        f"by {party(ctx.snapshot, record.attester)}"
    )


def _hand_over_json(ctx: Context, record: Record) -> dict[str, Any]:
    return {
        "uid": record.uid,
        "kind": record.kind.type_name,
        "quantity": number(quantity(record) or Fraction(0)),
        "issuedAt": record.attestation.issued_at,
        "by": party(ctx.snapshot, record.attester).to_json(),
    }


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
