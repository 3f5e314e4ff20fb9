"""Participant roles, mirroring `contracts/Roles.sol` bit for bit.

`tests/test_contract_tables.py` checks these against the deployed contracts.
"""

from __future__ import annotations

import enum


class Role(enum.IntFlag):
    """Role bits held by a participant in the on-chain registry."""

    REGISTRAR = 1 << 0
    RIGHTS_HOLDER = 1 << 1
    MANUFACTURER = 1 << 2
    EXPORTER = 1 << 3
    CARRIER = 1 << 4
    IMPORTER = 1 << 5
    CUSTOMS = 1 << 6
    AUDITOR = 1 << 7
    ANCHORER = 1 << 8

    @classmethod
    def parse(cls, names: str) -> Role:
        """Roles from a comma-separated list of names (`"exporter,carrier"`)."""
        result = cls(0)
        for raw in names.split(","):
            name = raw.strip().upper().replace("-", "_")
            if not name:
                continue
            if name not in cls.__members__:
                raise ValueError(
                    f"unknown role {raw.strip()!r}; known: {', '.join(m.lower() for m in cls.__members__)}"
                )
            result |= cls[name]
        return result

    def names(self) -> list[str]:
        """Lower-case names of the roles set in this value."""
        return [m.name.lower() for m in Role if m in self and m.name]


CUSTODY_ROLES = Role.MANUFACTURER | Role.EXPORTER | Role.CARRIER | Role.IMPORTER
