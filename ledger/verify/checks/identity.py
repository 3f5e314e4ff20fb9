"""Check 2, identity: the signer's standing in the on-chain registry at signing time
(and, for records anchored late, at anchoring time)."""

from __future__ import annotations

from ledger.chain.view import ChainSnapshot, RegistryAt
from ledger.reasons import Reason

from ..context import Context, outcome
from ..evidence import Record
from ..model import CheckResult, Finding


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
    distrusted: set[str] = set()
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
            distrusted.add(record.uid)
            if record.uid in ctx.ancestors:
                findings.append(
                    Finding(problem, f"{record.kind.type_name} by {record.attester} at {signed}: {why}", (record.uid,))
                )
    return outcome("identity", findings, distrusts=frozenset(distrusted))
