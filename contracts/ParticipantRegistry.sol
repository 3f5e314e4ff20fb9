// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {IRoleListener} from "./interfaces/IRoleListener.sol";
import {Roles} from "./Roles.sol";

/// @title Participant registry
/// @notice The accreditation authority's on-chain register: which keys belong to which
/// participant, with which roles, in which validity window. Every change is checkpointed
/// by block time, so "did A hold role R at time T" has one answer forever, and every
/// change emits {EffectiveRolesChanged}, from which an auditor rebuilds the whole history.
/// @dev History is append-only: no function can backdate a change. Windows can only be
/// set or shortened into the future, and a rotated-out key can never come back.
///
/// Key rotation needs a registrar: a key cannot rotate itself. A stolen key that could
/// rotate itself would hand the participant's identity to the thief (and retire the
/// owner's key) before the registrar could suspend it; a planned rotation is therefore
/// a request to the accreditation authority, like an admission.
///
/// Same-second changes (several transactions of one block, or sub-second blocks): when a
/// key's state changes more than once within one second T, its effective roles AT T are
/// the intersection of every state it had during T (suspended or retired at any moment
/// of T means suspended or retired for all of T), and its latest state applies from T+1
/// on. A single change at T applies from T. Nothing that happened within a second is
/// lost from the history, and the doubt within that second goes against the signer.
contract ParticipantRegistry is IParticipantRegistry {
    using Checkpoints for Checkpoints.Trace208;

    // A checkpoint's value is the key's whole state from its key (a second) on:
    // effective roles (bits 0-15, what {rolesAt} returns), granted roles (16-31), suspended
    // (32), retired (33), and AHEAD (34): written one second ahead by a second change
    // within one second (see {_record}).
    uint208 private constant _ROLE_BITS = 0xFFFFFFFF;
    uint208 private constant _SUSPENDED = 1 << 32;
    uint208 private constant _RETIRED = 1 << 33;
    uint208 private constant _AHEAD = 1 << 34;

    mapping(address account => Participant) private _participants;
    mapping(address account => Checkpoints.Trace208) private _effective;

    /// @notice Contract told about every effective-role change (the ledger), or zero.
    IRoleListener public roleListener;

    /// @notice The successor each registrar key has proposed for its role (zero: none).
    mapping(address registrar => address successor) public pendingRegistrar;

    /// @notice A key was admitted as a participant.
    event ParticipantAdmitted(
        address indexed account, bytes32 indexed participantId, uint16 roles, uint48 validFrom, uint48 validUntil
    );
    /// @notice Roles were added to a key.
    event RolesGranted(address indexed account, uint16 granted, uint16 roles);
    /// @notice Roles were taken from a key.
    event RolesRevoked(address indexed account, uint16 revoked, uint16 roles);
    /// @notice A key was suspended; it signs nothing valid until reinstated.
    event ParticipantSuspended(address indexed account, bytes32 reason);
    /// @notice A suspended key was reinstated.
    event ParticipantReinstated(address indexed account);
    /// @notice A key's validity window now ends at `validUntil`.
    event ValidityChanged(address indexed account, uint48 validUntil);
    /// @notice `newKey` took over from `oldKey`; signatures by `oldKey` before `at` stay valid.
    /// A rotation emits this (and {EffectiveRolesChanged}), never {ParticipantAdmitted}.
    event KeyRotated(address indexed oldKey, address indexed newKey, bytes32 indexed participantId, uint48 at);
    /// @notice The effective roles of `account` are `roles` from unix time `since` on
    /// (zero while suspended or after rotation; `granted` is what the registrar granted).
    /// Replaying these events alone rebuilds {rolesAt} and tells why a key had no role:
    /// one event per checkpoint written, in order; for equal `since` the last event wins,
    /// and {rolesAt}(t) is the checkpoint with the greatest `since` <= t. A second change
    /// of a key within one second T emits two: T with the intersection of the states of
    /// T (flags ORed), then T+1 with the new state (so `since` can go back by one between
    /// consecutive events of a key).
    event EffectiveRolesChanged(
        address indexed account,
        uint16 roles,
        uint16 granted,
        bool suspended,
        bool retired,
        uint48 since,
        uint48 validFrom,
        uint48 validUntil
    );
    /// @notice The name whose keccak256 is `account`'s participant id, made public so that
    /// verifiers can show it: only the true preimage of the id can be published, so a name
    /// read from this event is the one the registrar admitted the participant under.
    event ParticipantNamed(address indexed account, bytes32 indexed participantId, string name);
    /// @notice The role listener was set.
    event RoleListenerSet(address indexed listener);
    /// @notice Registrar `from` proposed to hand its role to `to` (zero: proposal withdrawn).
    event RegistrarHandoverProposed(address indexed from, address indexed to);
    /// @notice `to` accepted the registrar role from `from`, which no longer holds it.
    event RegistrarHandoverAccepted(address indexed from, address indexed to);

    /// @notice The caller is not a currently active registrar.
    error NotRegistrar(address caller);
    /// @notice `account` is the zero address.
    error ZeroAddress();
    /// @notice `account` was already admitted (keys are never reused).
    error AlreadyRegistered(address account);
    /// @notice `account` was never admitted.
    error UnknownParticipant(address account);
    /// @notice `roles` has bits outside the defined roles, or is empty where roles are needed.
    error InvalidRoles(uint16 roles);
    /// @notice The validity window is empty or ends in the past.
    error InvalidWindow(uint48 validFrom, uint48 validUntil);
    /// @notice `account` was rotated out and can no longer change.
    error KeyRetired(address account);
    /// @notice Suspension state is already what was asked.
    error SuspensionUnchanged(address account, bool suspended);
    /// @notice A registrar cannot propose itself as its successor.
    error InvalidSuccessor(address successor);
    /// @notice `caller` is not the successor `from` proposed (`proposed`).
    error NoHandover(address from, address caller, address proposed);
    /// @notice keccak256 of the published name (`nameHash`) is not the participant id.
    error NameMismatch(address account, bytes32 participantId, bytes32 nameHash);

    modifier onlyRegistrar() {
        _requireRegistrar();
        _;
    }

    /// @notice Deploys the registry with `initialRegistrar` as its first registrar,
    /// valid from now with no end.
    /// @param initialRegistrar key of the accreditation authority
    /// @param registrarId stable participant identifier of the authority
    constructor(address initialRegistrar, bytes32 registrarId) {
        _admit(initialRegistrar, registrarId, Roles.REGISTRAR, 0, type(uint48).max);
    }

    // ------------------------------------------------------------------ registrar

    /// @notice Admits `account` with `roles` for the window [validFrom, validUntil).
    /// @dev A `validFrom` in the past is moved to now: history is never backdated.
    function admit(address account, bytes32 participantId, uint16 roles, uint48 validFrom, uint48 validUntil)
        external
        onlyRegistrar
    {
        _admit(account, participantId, roles, validFrom, validUntil);
    }

    /// @notice Adds `roles` to `account`, effective now.
    function grantRoles(address account, uint16 roles) external onlyRegistrar {
        Participant storage p = _live(account);
        if (roles == 0 || roles & ~Roles.ALL != 0) revert InvalidRoles(roles);
        p.roles |= roles;
        emit RolesGranted(account, roles, p.roles);
        _checkpoint(account, p);
    }

    /// @notice Removes `roles` from `account`, effective now.
    function revokeRoles(address account, uint16 roles) external onlyRegistrar {
        Participant storage p = _live(account);
        if (roles == 0 || roles & ~Roles.ALL != 0) revert InvalidRoles(roles);
        p.roles &= ~roles;
        emit RolesRevoked(account, roles, p.roles);
        _checkpoint(account, p);
    }

    /// @notice Suspends `account` from now on; nothing it signs while suspended is valid.
    function suspend(address account, bytes32 reason) external onlyRegistrar {
        Participant storage p = _live(account);
        if (p.suspended) revert SuspensionUnchanged(account, true);
        p.suspended = true;
        emit ParticipantSuspended(account, reason);
        _checkpoint(account, p);
    }

    /// @notice Lifts the suspension of `account` from now on (not retroactively).
    function reinstate(address account) external onlyRegistrar {
        Participant storage p = _live(account);
        if (!p.suspended) revert SuspensionUnchanged(account, false);
        p.suspended = false;
        emit ParticipantReinstated(account);
        _checkpoint(account, p);
    }

    /// @notice Moves the end of the validity window of `account` to `validUntil`.
    /// @dev Only a window that has not ended can change, and only to a future end, so
    /// a key that was invalid at some moment stays invalid for that moment.
    function setValidUntil(address account, uint48 validUntil) external onlyRegistrar {
        Participant storage p = _live(account);
        uint48 nowTs = uint48(block.timestamp);
        if (p.validUntil <= nowTs || validUntil < nowTs || validUntil <= p.validFrom) {
            revert InvalidWindow(p.validFrom, validUntil);
        }
        p.validUntil = validUntil;
        emit ValidityChanged(account, validUntil);
        _checkpoint(account, p);
    }

    /// @notice Replaces `oldKey` by `newKey` from now on: the new key takes the
    /// participant's identity, roles, suspension state and window; the old key is
    /// retired. Signatures the old key made while valid stay valid.
    /// @dev Only a registrar may rotate, never the key itself: a stolen key must not be
    /// able to take over its participant's identity before the registrar can react. The
    /// new key's window starts at max(now, old key's start): a key admitted for later does
    /// not become valid early by rotation. Emits {KeyRotated}, not {ParticipantAdmitted}.
    function rotateKey(address oldKey, address newKey) external onlyRegistrar {
        Participant storage old = _live(oldKey);
        uint48 nowTs = uint48(block.timestamp);
        // Every state change first, the listener calls last (checks-effects-interactions).
        Participant storage fresh =
            _enrol(newKey, old.participantId, old.roles, old.validFrom, old.validUntil, old.suspended);
        old.retired = true;
        old.successor = newKey;
        emit KeyRotated(oldKey, newKey, old.participantId, nowTs);
        _record(oldKey, old);
        _notify(newKey, fresh);
        _notify(oldKey, old);
    }

    /// @notice Publishes `name` as the name of `account`, whose participant id must be
    /// keccak256(`name`) (as `provenance participant admit --name` makes it). Changes no
    /// state: the {ParticipantNamed} event is the publication. A rotated or retired key can
    /// be named too (its id does not change); naming twice only repeats the same fact.
    /// @dev Registrar-only although the hash check alone makes a false name impossible:
    /// so that no outsider can fill the registry's logs that every verifier reads.
    function publishName(address account, string calldata name) external onlyRegistrar {
        Participant storage p = _participants[account];
        if (p.validUntil == 0) revert UnknownParticipant(account);
        bytes32 nameHash = keccak256(bytes(name));
        if (nameHash != p.participantId) revert NameMismatch(account, p.participantId, nameHash);
        emit ParticipantNamed(account, p.participantId, name);
    }

    /// @notice Sets the contract told about every effective-role change (the ledger).
    function setRoleListener(IRoleListener listener) external onlyRegistrar {
        roleListener = listener;
        emit RoleListenerSet(address(listener));
    }

    // ----------------------------------------------------------- registrar handover

    /// @notice Proposes `successor` (a key or a smart-contract wallet such as a multisig)
    /// to take over the caller's registrar role; nothing changes until it accepts.
    /// Proposing zero withdraws a proposal; a new proposal replaces the previous one.
    /// @param successor the account that may accept the role
    function proposeRegistrar(address successor) external onlyRegistrar {
        if (successor == msg.sender) revert InvalidSuccessor(successor);
        pendingRegistrar[msg.sender] = successor;
        emit RegistrarHandoverProposed(msg.sender, successor);
    }

    /// @notice Accepts the registrar role `from` proposed to the caller. The caller gains
    /// it from now on (admitted under `from`'s participant id if it was not a participant,
    /// else the role is added to its roles) and `from` loses it, in one transaction, with
    /// {RolesGranted} or {ParticipantAdmitted}, {RolesRevoked} and {EffectiveRolesChanged}.
    /// @dev Two steps, so the role never lands on an address that cannot act (a mistyped
    /// address, a wallet without the call): only a successor able to call gets it.
    /// @param from the registrar that proposed the caller
    function acceptRegistrar(address from) external {
        address proposed = pendingRegistrar[from];
        if (proposed != msg.sender) revert NoHandover(from, msg.sender, proposed);
        if (_rolesAt(from, uint48(block.timestamp)) & Roles.REGISTRAR == 0) revert NotRegistrar(from);
        delete pendingRegistrar[from];
        // Every state change first, the listener calls last (checks-effects-interactions).
        Participant storage old = _participants[from];
        old.roles &= ~Roles.REGISTRAR;
        emit RolesRevoked(from, Roles.REGISTRAR, old.roles);
        Participant storage fresh;
        if (_participants[msg.sender].validUntil == 0) {
            fresh = _enrol(msg.sender, old.participantId, Roles.REGISTRAR, 0, type(uint48).max, false);
            emit ParticipantAdmitted(msg.sender, old.participantId, Roles.REGISTRAR, fresh.validFrom, fresh.validUntil);
        } else {
            fresh = _live(msg.sender);
            fresh.roles |= Roles.REGISTRAR;
            emit RolesGranted(msg.sender, Roles.REGISTRAR, fresh.roles);
            _record(msg.sender, fresh);
        }
        _record(from, old);
        emit RegistrarHandoverAccepted(from, msg.sender);
        _notify(msg.sender, fresh);
        _notify(from, old);
    }

    // ---------------------------------------------------------------------- views

    /// @inheritdoc IParticipantRegistry
    function hasRoleAt(address account, uint16 role, uint48 time) external view returns (bool) {
        return role != 0 && _rolesAt(account, time) & role == role;
    }

    /// @inheritdoc IParticipantRegistry
    function hasAnyRoleAt(address account, uint16 anyOf, uint48 time) external view returns (bool) {
        return _rolesAt(account, time) & anyOf != 0;
    }

    /// @inheritdoc IParticipantRegistry
    function rolesAt(address account, uint48 time) external view returns (uint16) {
        return _rolesAt(account, time);
    }

    /// @inheritdoc IParticipantRegistry
    function participant(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    /// @notice Number of role checkpoints recorded for `account` (for auditors).
    function checkpointCount(address account) external view returns (uint256) {
        return _effective[account].length();
    }

    // ------------------------------------------------------------------- internal

    function _rolesAt(address account, uint48 time) private view returns (uint16) {
        Participant storage p = _participants[account];
        if (time < p.validFrom || time >= p.validUntil) return 0;
        return uint16(_effective[account].upperLookupRecent(time));
    }

    function _admit(address account, bytes32 participantId, uint16 roles, uint48 validFrom, uint48 validUntil)
        private
    {
        Participant storage p = _enrol(account, participantId, roles, validFrom, validUntil, false);
        emit ParticipantAdmitted(account, participantId, roles, p.validFrom, validUntil);
        _notify(account, p);
    }

    /// @dev Writes a new key record and its first checkpoint; tells no one. A `validFrom`
    /// in the past is moved to now.
    function _enrol(
        address account,
        bytes32 participantId,
        uint16 roles,
        uint48 validFrom,
        uint48 validUntil,
        bool suspended
    ) private returns (Participant storage p) {
        if (account == address(0)) revert ZeroAddress();
        if (_participants[account].validUntil != 0) revert AlreadyRegistered(account);
        if (roles & ~Roles.ALL != 0) revert InvalidRoles(roles);
        uint48 nowTs = uint48(block.timestamp);
        if (validFrom < nowTs) validFrom = nowTs;
        if (validUntil <= validFrom) revert InvalidWindow(validFrom, validUntil);
        p = _participants[account];
        p.participantId = participantId;
        p.roles = roles;
        p.validFrom = validFrom;
        p.validUntil = validUntil;
        p.suspended = suspended;
        _record(account, p);
    }

    /// @dev Records the effective roles of `account` from now on and tells the listener.
    function _checkpoint(address account, Participant storage p) private {
        _record(account, p);
        _notify(account, p);
    }

    /// @dev Appends the state of `account` from now (second T) on to its history and emits
    /// one {EffectiveRolesChanged} per checkpoint written. The first change in T pushes
    /// (T, state). A later change in T intersects its state into the checkpoint at T
    /// and (re)writes (T+1, state) marked AHEAD, so that a change in second T+1 is still
    /// told apart from a second change in T.
    function _record(address account, Participant storage p) private {
        uint208 state = _stateOf(p);
        uint48 nowTs = uint48(block.timestamp);
        Checkpoints.Trace208 storage trace = _effective[account];
        (, uint48 lastKey, uint208 lastValue) = trace.latestCheckpoint();
        if (lastKey != nowTs + 1 && (lastKey != nowTs || lastValue & _AHEAD != 0)) {
            // First change in this second (an AHEAD checkpoint at now is the previous
            // second's carried state, which this change replaces).
            // push returns the previous and new values; nothing to check.
            trace.push(nowTs, state);
            _emitCheckpoint(account, p, nowTs, state);
            return;
        }
        Checkpoints.Checkpoint208[] storage checkpoints = trace._checkpoints;
        if (lastKey == nowTs) checkpoints.push(Checkpoints.Checkpoint208({_key: nowTs + 1, _value: 0}));
        uint256 n = checkpoints.length;
        Checkpoints.Checkpoint208 storage atNow = checkpoints[n - 2];
        uint208 meet = _meet(atNow._value, state);
        atNow._value = meet;
        checkpoints[n - 1]._value = state | _AHEAD;
        _emitCheckpoint(account, p, nowTs, meet);
        _emitCheckpoint(account, p, nowTs + 1, state);
    }

    /// @dev Emits the checkpoint (`since`, `state`) of `account` with its current window.
    function _emitCheckpoint(address account, Participant storage p, uint48 since, uint208 state) private {
        emit EffectiveRolesChanged(
            account,
            uint16(state),
            uint16(state >> 16),
            state & _SUSPENDED != 0,
            state & _RETIRED != 0,
            since,
            p.validFrom,
            p.validUntil
        );
    }

    /// @dev The checkpoint value of the current state of `p`.
    function _stateOf(Participant storage p) private view returns (uint208 state) {
        state = uint208(_effectiveRoles(p)) | (uint208(p.roles) << 16);
        if (p.suspended) state |= _SUSPENDED;
        if (p.retired) state |= _RETIRED;
    }

    /// @dev Two states of one second taken together, failing closed: roles intersected,
    /// suspended or retired if either was.
    function _meet(uint208 a, uint208 b) private pure returns (uint208) {
        return (a & b & _ROLE_BITS) | ((a | b) & (_SUSPENDED | _RETIRED));
    }

    /// @dev Tells the role listener (the ledger) the effective roles of `account` now.
    function _notify(address account, Participant storage p) private {
        IRoleListener listener = roleListener;
        if (address(listener) != address(0)) {
            uint16 effective = _effectiveRoles(p);
            listener.onEffectiveRolesChanged(account, effective, p.validFrom, p.validUntil);
        }
    }

    /// @dev Roles a key can sign with: none while suspended or once rotated out.
    function _effectiveRoles(Participant storage p) private view returns (uint16) {
        return (p.suspended || p.retired) ? 0 : p.roles;
    }

    function _live(address account) private view returns (Participant storage p) {
        p = _participants[account];
        if (p.validUntil == 0) revert UnknownParticipant(account);
        if (p.retired) revert KeyRetired(account);
    }

    function _requireRegistrar() private view {
        if (_rolesAt(msg.sender, uint48(block.timestamp)) & Roles.REGISTRAR == 0) revert NotRegistrar(msg.sender);
    }
}
