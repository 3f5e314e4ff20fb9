"""Check 1, integrity: every record in the evidence is what was signed."""

from __future__ import annotations

from ledger.eip712 import attestation_uid
from ledger.fields import FieldError, check_fields
from ledger.reasons import Reason

from ..context import Context, outcome
from ..evidence import Record
from ..model import CheckResult, Finding


def check_integrity(ctx: Context) -> CheckResult:
    """Every record in the evidence — not only the shipment's history — must be what was
    signed: a watch-list entry, licence or revocation that no longer matches its
    signature is evidence of a corrupted store or an edited bundle, never silently
    dropped."""
    findings = [
        Finding(Reason.STORE_CORRUPTED, message, (uid,)) for uid, message in sorted(ctx.evidence.unreadable.items())
    ]
    distrusted: set[str] = set()
    for record in ctx.evidence.records.values():
        problem = _integrity_problem(ctx, record)
        if problem is not None:
            distrusted.add(record.uid)
            code, message = problem
            if record.uid not in ctx.ancestors:
                message = f"{record.kind.type_name} in the evidence: {message}"
            findings.append(Finding(code, message, (record.uid,)))
    for uid, shown in sorted(ctx.evidence.presented.items()):
        problem = _integrity_problem(ctx, shown)
        if problem is not None:
            findings.append(Finding(problem[0], f"as presented in the bundle: {problem[1]}", (uid,)))
    return outcome("integrity", findings, distrusts=frozenset(distrusted))


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
