"""Builders for attestations in tests (through the public core functions)."""

from __future__ import annotations

import random
import secrets

from ledger.eip712 import Attestation, Domain
from ledger.kinds import Kind

ZERO_CONTRACT = "0x" + "11" * 20


def random_attestation(rng: random.Random, attester: str, kind: Kind | None = None) -> Attestation:
    return Attestation(
        kind=kind or rng.choice(list(Kind)),
        attester=attester,
        subject=rng.randbytes(32),
        refs=tuple(rng.randbytes(32) for _ in range(rng.randint(0, 4))),
        payload_hash=rng.randbytes(32),
        issued_at=rng.randint(1, 2**40),
        expires_at=0,
    )


def random_domain(rng: random.Random) -> Domain:
    return Domain(chain_id=rng.randint(1, 2**32), verifying_contract="0x" + rng.randbytes(20).hex())


def random_uid() -> bytes:
    return secrets.token_bytes(32)
