// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Participant roles
/// @notice Role bits held by participants in the {ParticipantRegistry}. A participant's
/// roles are a bit set (uint16); the values are part of the on-chain ABI and must never
/// be renumbered, because the registry's history is replayed with them.
library Roles {
    uint16 internal constant REGISTRAR = 1 << 0;
    uint16 internal constant RIGHTS_HOLDER = 1 << 1;
    uint16 internal constant MANUFACTURER = 1 << 2;
    uint16 internal constant EXPORTER = 1 << 3;
    uint16 internal constant CARRIER = 1 << 4;
    uint16 internal constant IMPORTER = 1 << 5;
    uint16 internal constant CUSTOMS = 1 << 6;
    uint16 internal constant AUDITOR = 1 << 7;
    uint16 internal constant ANCHORER = 1 << 8;

    /// @notice Every defined role; bits outside this mask are rejected.
    uint16 internal constant ALL = (1 << 9) - 1;
}
