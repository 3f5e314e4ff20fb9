"""Conversions between store rows and core values (one place for each)."""

from __future__ import annotations

from ledger.eip712 import Attestation
from ledger.hashing import parse_hex
from ledger.kinds import Kind

from .models import AttestationRow


def attestation_from_row(row: AttestationRow, refs: list[str]) -> Attestation:
    """The signed message of a stored attestation, from its row and its ordered references."""
    return Attestation(
        kind=Kind(row.kind),
        attester=row.attester,
        subject=parse_hex(row.subject, 32, "subject"),
        refs=tuple(parse_hex(r, 32, "ref") for r in refs),
        payload_hash=parse_hex(row.payload_hash, 32, "payloadHash"),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
    )
