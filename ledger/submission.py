"""Building signed submissions: what an exporter or rights holder sends to the ledger."""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount

from .eip712 import Attestation, Domain, attestation_uid, typed_data
from .fields import FieldError, field_errors
from .hashing import keccak
from .kinds import Kind
from .payload import commit
from .signatures import sign_attestation


def subject_id(text: str) -> bytes:
    """The 32-byte subject of a human identifier (a lot, an asset, a shipment)."""
    return keccak(text.encode())


def build_submission(
    account: LocalAccount,
    kind: Kind,
    domain: Domain,
    fields: dict[str, Any],
    *,
    subject: str | bytes,
    refs: list[str] | tuple[str, ...] = (),
    issued_at: int | None = None,
    expires_at: int = 0,
    disclose: set[str] | None = None,
    confidential: list[str] | None = None,
) -> dict[str, Any]:
    """Commit to `fields`, sign the attestation with `account`, and return the JSON
    submission (`typedData`, `signature`, `payload`, `confidential`, `uid`).

    `disclose` limits which fields are revealed to the ledger (default: all); the others
    stay with the signer as salted hashes. `confidential` fields are revealed to the
    ledger but stored encrypted.
    """
    return build_submission_with_salts(
        account,
        kind,
        domain,
        fields,
        subject=subject,
        refs=refs,
        issued_at=issued_at,
        expires_at=expires_at,
        disclose=disclose,
        confidential=confidential,
    )[0]


def build_submission_with_salts(
    account: LocalAccount,
    kind: Kind,
    domain: Domain,
    fields: dict[str, Any],
    *,
    subject: str | bytes,
    refs: list[str] | tuple[str, ...] = (),
    issued_at: int | None = None,
    expires_at: int = 0,
    disclose: set[str] | None = None,
    confidential: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the submission to send, the holder's copy): as `build_submission`, and the same
    signed submission with every field and its salt disclosed — what the holder keeps
    (never sends) so that it can disclose any field later."""
    commitment = commit(fields)
    disclosure = commitment.disclosure if disclose is None else commitment.disclosure.restricted_to(disclose)
    attestation = Attestation(
        kind=kind,
        attester=account.address,
        subject=subject if isinstance(subject, bytes) else subject_id(subject),
        refs=tuple(bytes.fromhex(r.removeprefix("0x")) for r in refs),
        payload_hash=commitment.payload_hash,
        issued_at=int(time.time()) if issued_at is None else issued_at,
        expires_at=expires_at,
    )
    signature = sign_attestation(account, attestation, domain)

    submission = {
        "typedData": typed_data(attestation, domain),
        "signature": "0x" + signature.hex(),
        "payload": disclosure.to_json(),
        "confidential": list(confidential or []),
        "uid": "0x" + attestation_uid(attestation, domain).hex(),
    }
    return submission, {**submission, "payload": commitment.disclosure.to_json(), "confidential": []}


def field_problems(kind: Kind, values: dict[str, Any], ref_count: int | None = None) -> list[FieldError]:
    """Every way the field `values` break the rules of `kind`, all at once, before signing
    (reference counts only when `ref_count` is given)."""
    try:
        disclosure = commit(values, salts={n: b"\0" * 32 for n in values}).disclosure
    except ValueError as exc:
        return [FieldError("payload", str(exc))]
    errors = field_errors(kind, disclosure, 0 if ref_count is None else ref_count)
    return [e for e in errors if ref_count is not None or e.field != "refs"]
