// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Participant registry interface
/// @notice Who may sign what, and when. Answers are historical: a key that held a role
/// at time T keeps having held it at T after it is rotated out or suspended.
interface IParticipantRegistry {
    /// @notice Current record of one key.
    struct Participant {
        bytes32 participantId; // stable identity across key rotations
        uint16 roles; // granted roles (before suspension and validity window)
        bool suspended;
        bool retired; // rotated out: can never be reactivated
        uint48 validFrom; // inclusive, unix seconds
        uint48 validUntil; // exclusive, unix seconds
        address successor; // the key that replaced this one, if rotated
    }

    /// @notice True when `account` held every role bit of `role` at unix time `time`,
    /// within its validity window and not suspended.
    function hasRoleAt(address account, uint16 role, uint48 time) external view returns (bool);

    /// @notice True when `account` held at least one role of `anyOf` at unix time `time`.
    function hasAnyRoleAt(address account, uint16 anyOf, uint48 time) external view returns (bool);

    /// @notice The effective roles of `account` at unix time `time` (zero outside its
    /// validity window, while suspended, and after rotation).
    function rolesAt(address account, uint48 time) external view returns (uint16);

    /// @notice The current record of `account` (all zero when never admitted).
    function participant(address account) external view returns (Participant memory);
}
