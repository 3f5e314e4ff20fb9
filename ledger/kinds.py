"""Attestation kinds: EIP-712 type names and the roles needed to sign each.

Mirrors `contracts/AttestationKinds.sol`; `tests/test_contract_tables.py` compares the
two against a deployed ledger so they cannot drift.
"""

from __future__ import annotations

import enum

from .roles import CUSTODY_ROLES, Role


class Kind(enum.IntEnum):
    """What an attestation states. The value is the on-chain `kind` byte."""

    IP_ASSET = 1
    LICENCE = 2
    PRODUCTION = 3
    TRANSFER = 4
    TRANSFER_ACCEPTANCE = 5
    SHIPMENT = 6
    REVOCATION = 7
    CUSTOMS_FINDING = 8
    WATCHLIST = 9
    OBSERVATION = 10

    @property
    def type_name(self) -> str:
        """The EIP-712 primary type name a wallet shows when signing."""
        return TYPE_NAMES[self]

    @property
    def required_roles(self) -> Role:
        """The attester must hold at least one of these roles at signing time."""
        return REQUIRED_ROLES[self]

    @classmethod
    def from_type_name(cls, name: str) -> Kind:
        try:
            return _BY_TYPE_NAME[name]
        except KeyError:
            raise ValueError(f"unknown attestation type {name!r}; known: {', '.join(_BY_TYPE_NAME)}") from None

    @classmethod
    def parse(cls, text: str) -> Kind:
        """A kind from its name (`transfer`, `TRANSFER`) or its EIP-712 type name (`Transfer`)."""
        key = text.strip().upper().replace("-", "_")
        if key in cls.__members__:
            return cls[key]
        return cls.from_type_name(text.strip())


TYPE_NAMES: dict[Kind, str] = {
    Kind.IP_ASSET: "IpAsset",
    Kind.LICENCE: "Licence",
    Kind.PRODUCTION: "Production",
    Kind.TRANSFER: "Transfer",
    Kind.TRANSFER_ACCEPTANCE: "TransferAcceptance",
    Kind.SHIPMENT: "Shipment",
    Kind.REVOCATION: "Revocation",
    Kind.CUSTOMS_FINDING: "CustomsFinding",
    Kind.WATCHLIST: "WatchlistEntry",
    Kind.OBSERVATION: "Observation",
}
_BY_TYPE_NAME = {name: kind for kind, name in TYPE_NAMES.items()}

REQUIRED_ROLES: dict[Kind, Role] = {
    Kind.IP_ASSET: Role.RIGHTS_HOLDER,
    Kind.WATCHLIST: Role.RIGHTS_HOLDER,
    Kind.LICENCE: Role.RIGHTS_HOLDER | Role.MANUFACTURER,
    Kind.PRODUCTION: Role.MANUFACTURER,
    Kind.TRANSFER: CUSTODY_ROLES,
    Kind.TRANSFER_ACCEPTANCE: CUSTODY_ROLES,
    Kind.SHIPMENT: Role.EXPORTER,
    Kind.REVOCATION: Role.RIGHTS_HOLDER | CUSTODY_ROLES | Role.CUSTOMS,
    Kind.CUSTOMS_FINDING: Role.CUSTOMS,
    # What a supply-chain party saw (an EPCIS event that moves nothing): evidence only.
    Kind.OBSERVATION: Role.RIGHTS_HOLDER | CUSTODY_ROLES,
}
