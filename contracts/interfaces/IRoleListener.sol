// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Receiver of effective-role changes pushed by the registry
/// @notice Lets a contract keep a cheap local copy of who is currently authorised
/// (the ledger's anchorer check) without ever going stale.
interface IRoleListener {
    /// @notice Called by the registry whenever the effective roles or validity window of
    /// `account` change. `roles` is zero while suspended or after rotation.
    function onEffectiveRolesChanged(address account, uint16 roles, uint48 validFrom, uint48 validUntil) external;
}
