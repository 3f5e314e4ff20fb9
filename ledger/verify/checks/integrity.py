"""Check 1, integrity: every record in the evidence is what was signed."""

from __future__ import annotations

from ledger.eip712 import Attestation, Domain, attestation_uid
from ledger.fields import FieldError, check_fields
from ledger.payload import Disclosure
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


# uid -> the very objects of a record that passed the checks below (its message, domain,
# signature and disclosure), held here so that none of them can be freed and its identity
# taken by another object. Everything `_signed_problem` checks is a pure function of
# those values, none of which is changed once made (frozen dataclasses, bytes; a
# disclosure's field dict is never written after it is parsed), so a record holding
# these same objects passes again without the hashing and the signature recovery. The
# evidence reuses a record's objects only while its stored row reads exactly the same
# (`evidence._parse_row`): a row edited after it was checked, a bundle's record, a late
# disclosure are new objects, checked in full. Only a signature recovered to the
# attester is remembered, never a smart-contract wallet's answer (ERC-1271), which the
# wallet may change.
_PASSED: dict[str, tuple[Attestation, Domain, bytes, Disclosure]] = {}
_PASSED_MAX = 8192  # bounded: emptied when full


def _integrity_problem(ctx: Context, record: Record) -> tuple[Reason, str] | None:
    if record.anchor and record.anchor.get("error"):
        return Reason.STORE_CORRUPTED, str(record.anchor["error"])
    if record.domain != ctx.domain:
        return (
            Reason.WRONG_DOMAIN,
            f"signed for chain {record.domain.chain_id} contract {record.domain.verifying_contract}, not this ledger",
        )
    passed = _PASSED.get(record.uid)
    if (
        passed is not None
        and passed[0] is record.attestation
        and passed[1] is record.domain
        and passed[2] is record.signature
        and passed[3] is record.disclosure
    ):
        return None
    return _signed_problem(ctx, record)


def _signed_problem(ctx: Context, record: Record) -> tuple[Reason, str] | None:
    """The record's UID, signature, commitments and field rules checked in full."""
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
    if not result.via_erc1271:
        if len(_PASSED) >= _PASSED_MAX:
            _PASSED.clear()
        _PASSED[record.uid] = (record.attestation, record.domain, record.signature, record.disclosure)
    return None
