"""EIP-712 attestations: the domain, the message, its typed data, and its UID.

The UID of an attestation is its EIP-712 digest under the domain
`{name: "ProvenanceLedger", version: "1", chainId, verifyingContract}` — the same digest
the ledger contract's `hashAttestation` computes, so a signature can never be replayed on
another chain or another deployment. `attestation_uid` is the one implementation here;
`tests/test_signatures.py` checks it against eth-account's generic encoder and the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .hashing import checksum_address as to_checksum_address
from .hashing import hex32, keccak, parse_hex
from .kinds import Kind

DOMAIN_NAME = "ProvenanceLedger"
DOMAIN_VERSION = "1"

MESSAGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("attester", "address"),
    ("subject", "bytes32"),
    ("refs", "bytes32[]"),
    ("payloadHash", "bytes32"),
    ("issuedAt", "uint64"),
    ("expiresAt", "uint64"),
)
DOMAIN_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
)
MAX_REFS = 256
UINT64_MAX = 2**64 - 1

_FIELDS_SIGNATURE = "(" + ",".join(f"{t} {n}" for n, t in MESSAGE_FIELDS) + ")"
_MESSAGE_KEYS = frozenset(name for name, _ in MESSAGE_FIELDS)
_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(" + ",".join(f"{t} {n}" for n, t in DOMAIN_FIELDS).encode() + b")")


@cache
def type_hash(kind: Kind) -> bytes:
    """keccak256 of the EIP-712 type string of `kind`."""
    return keccak((kind.type_name + _FIELDS_SIGNATURE).encode())


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one deployment of the ledger."""

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifying_contract", to_checksum_address(self.verifying_contract))

    @property
    def separator(self) -> bytes:
        return _domain_separator(self.name, self.version, self.chain_id, self.verifying_contract)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    @classmethod
    def from_json(cls, data: object) -> Domain:
        if not isinstance(data, dict):
            raise ValueError("domain: expected an object")
        extra = set(data) - {"name", "version", "chainId", "verifyingContract"}
        if extra:
            raise ValueError(f"domain: unexpected fields {sorted(extra)}")
        try:
            chain_id = _uint(data["chainId"], "domain.chainId", 2**256 - 1)
            contract = _address(data["verifyingContract"], "domain.verifyingContract")
            name, version = data["name"], data["version"]
        except KeyError as exc:
            raise ValueError(f"domain: missing field {exc.args[0]}") from None
        if not isinstance(name, str) or not isinstance(version, str):
            raise ValueError("domain: name and version must be strings")
        return cls(chain_id=chain_id, verifying_contract=contract, name=name, version=version)


@cache
def _domain_separator(name: str, version: str, chain_id: int, contract: str) -> bytes:
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(name.encode())
        + keccak(version.encode())
        + chain_id.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(contract[2:])
    )


@dataclass(frozen=True, slots=True)
class Attestation:
    """One attestation message, as signed. `refs` are earlier UIDs (custody inputs,
    licences, the attestation revoked, ...); `payload_hash` commits to the off-chain
    fields (see `ledger.payload`); times are unix seconds, `expires_at` 0 = never."""

    kind: Kind
    attester: str
    subject: bytes
    refs: tuple[bytes, ...]
    payload_hash: bytes
    issued_at: int
    expires_at: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attester", to_checksum_address(self.attester))
        if len(self.subject) != 32 or len(self.payload_hash) != 32 or any(len(r) != 32 for r in self.refs):
            raise ValueError("subject, payloadHash and refs must be 32 bytes each")
        if len(self.refs) > MAX_REFS:
            raise ValueError(f"refs: at most {MAX_REFS} references")
        if not (0 <= self.issued_at <= UINT64_MAX and 0 <= self.expires_at <= UINT64_MAX):
            raise ValueError("issuedAt and expiresAt must be uint64")
        if self.expires_at and self.expires_at <= self.issued_at:
            raise ValueError("expiresAt must be after issuedAt (or 0 for never)")

    def struct_hash(self) -> bytes:
        return keccak(
            type_hash(self.kind)
            + bytes(12)
            + bytes.fromhex(self.attester[2:])
            + self.subject
            + keccak(b"".join(self.refs))
            + self.payload_hash
            + self.issued_at.to_bytes(32, "big")
            + self.expires_at.to_bytes(32, "big")
        )

    def message_json(self) -> dict[str, Any]:
        """The EIP-712 `message` object (hex strings, integers)."""
        return {
            "attester": self.attester,
            "subject": hex32(self.subject),
            "refs": [hex32(r) for r in self.refs],
            "payloadHash": hex32(self.payload_hash),
            "issuedAt": self.issued_at,
            "expiresAt": self.expires_at,
        }

    def contract_args(self) -> tuple[Any, ...]:
        """The `Attestation` struct tuple for the ledger contract's functions."""
        return (
            int(self.kind),
            self.attester,
            self.subject,
            list(self.refs),
            self.payload_hash,
            self.issued_at,
            self.expires_at,
        )

    @classmethod
    def from_message_json(cls, kind: Kind, message: object) -> Attestation:
        """Parse an EIP-712 message object strictly; ValueError names the bad field."""
        if not isinstance(message, dict):
            raise ValueError("message: expected an object")
        if message.keys() != _MESSAGE_KEYS:
            missing, extra = _MESSAGE_KEYS - set(message), set(message) - _MESSAGE_KEYS
            if missing:
                raise ValueError(f"message: missing fields {sorted(missing)}")
            raise ValueError(f"message: unexpected fields {sorted(extra)}")
        return cls.from_values(
            kind,
            message["attester"],
            message["subject"],
            message["refs"],
            message["payloadHash"],
            message["issuedAt"],
            message["expiresAt"],
        )

    @classmethod
    def from_values(
        cls,
        kind: Kind,
        attester: object,
        subject: object,
        refs: object,
        payload_hash: object,
        issued_at: object,
        expires_at: object,
    ) -> Attestation:
        """The message's values parsed as strictly as `from_message_json` parses them
        (which calls this), from where a served record holds them (no object built)."""
        if not isinstance(refs, list):
            raise ValueError("message.refs: expected a list")
        if len(refs) > MAX_REFS:
            raise ValueError(f"message.refs: at most {MAX_REFS} references")
        issued = _uint(issued_at, "message.issuedAt", UINT64_MAX)
        expires = _uint(expires_at, "message.expiresAt", UINT64_MAX)
        if expires and expires <= issued:
            raise ValueError("message.expiresAt: must be after issuedAt (or 0 for never)")
        return cls(
            kind=kind,
            attester=_address(attester, "message.attester"),
            subject=parse_hex(subject, 32, "message.subject"),
            refs=tuple(parse_hex(r, 32, f"message.refs[{i}]") for i, r in enumerate(refs)),
            payload_hash=parse_hex(payload_hash, 32, "message.payloadHash"),
            issued_at=issued,
            expires_at=expires,
        )


def attestation_uid(attestation: Attestation, domain: Domain) -> bytes:
    """The UID: EIP-712 digest of `attestation` under `domain` (32 bytes)."""
    return keccak(b"\x19\x01" + domain.separator + attestation.struct_hash())


def typed_data(attestation: Attestation, domain: Domain) -> dict[str, Any]:
    """Full EIP-712 typed data (`domain`, `types`, `primaryType`, `message`), as
    eth-account's `encode_typed_data(full_message=...)` and ethers expect."""
    name = attestation.kind.type_name
    return {
        "domain": domain.to_json(),
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS],
            name: [{"name": n, "type": t} for n, t in MESSAGE_FIELDS],
        },
        "primaryType": name,
        "message": attestation.message_json(),
    }


def parse_typed_data(data: object) -> tuple[Attestation, Domain]:
    """Parse full typed data, refusing any type definition other than ours (a client
    must not be able to make us hash one struct while the signer saw another)."""
    if not isinstance(data, dict):
        raise ValueError("typedData: expected an object")
    primary = data.get("primaryType")
    if not isinstance(primary, str):
        raise ValueError("typedData.primaryType: expected a string")
    kind = Kind.from_type_name(primary)
    types = data.get("types")
    expected_types = typed_data_types(kind)
    if types != expected_types and types != {k: v for k, v in expected_types.items() if k != "EIP712Domain"}:
        raise ValueError(f"typedData.types: not the {primary} type of this ledger")
    domain = Domain.from_json(data.get("domain"))
    return Attestation.from_message_json(kind, data.get("message")), domain


def typed_data_types(kind: Kind) -> dict[str, list[dict[str, str]]]:
    return {
        "EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS],
        kind.type_name: [{"name": n, "type": t} for n, t in MESSAGE_FIELDS],
    }


def _uint(value: object, field: str, maximum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected an integer")
    if isinstance(value, str) and value.isdigit() and len(value) <= 78:
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{field}: expected an integer from 0 to {maximum}")
    return value


def _address(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise ValueError(f"{field}: expected a 0x-prefixed 20-byte address")
    try:
        int(value[2:], 16)
        checksummed = to_checksum_address(value)
    except ValueError:
        raise ValueError(f"{field}: not a valid address") from None
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise ValueError(f"{field}: EIP-55 checksum mismatch (a mistyped address?)")
    return checksummed
