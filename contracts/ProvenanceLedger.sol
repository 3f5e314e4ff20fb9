// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {AttestationKinds} from "./AttestationKinds.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {IRoleListener} from "./interfaces/IRoleListener.sol";
import {Roles} from "./Roles.sol";

/// @title Provenance ledger
/// @notice Anchors signed provenance attestations on chain, in two ways:
///  - batch: an anchorer posts the Merkle root of many attestation UIDs. Batches form one
///    gap-free, hash-linked sequence: batch i names batch i-1's root, every index is taken
///    once, so history can be neither rewritten nor forked;
///  - direct: one attestation whose EIP-712 signature (plain key or ERC-1271 wallet) and
///    attester role are checked here, readable by other contracts, revocable by its attester.
/// The UID of an attestation is its EIP-712 digest under this contract's domain
/// {name: "ProvenanceLedger", version: "1", chainId, verifyingContract}, so a signature
/// can never be replayed on another chain or another deployment.
/// @dev Gas is spent on what views must read: a batch stores only its root (count and
/// time travel in {BatchAnchored} and its block); a direct record is one slot.
contract ProvenanceLedger is EIP712, IRoleListener {
    /// @notice An attestation as signed (the EIP-712 message; the kind picks the type name).
    struct Attestation {
        uint8 kind;
        address attester;
        bytes32 subject;
        bytes32[] refs;
        bytes32 payloadHash;
        uint64 issuedAt;
        uint64 expiresAt;
    }

    /// @notice A directly recorded attestation (one storage slot).
    struct Record {
        address attester;
        uint48 recordedAt;
        uint48 revokedAt; // zero while not revoked
    }

    /// @notice The registry consulted for roles at signing time.
    IParticipantRegistry public immutable registry;
    /// @notice Oldest signature (in seconds before the block) accepted for a direct
    /// attestation; bounds what a leaked, rotated-out key could still backdate.
    uint64 public immutable maxSignatureAge;

    /// @notice The ledger that continues this one (a future contract version), or zero.
    /// Set once by a registrar; history here is never rewritten, and nothing on the
    /// anchoring path reads it. Verifiers follow it to find where anchoring went on.
    address public successor;

    mapping(uint256 index => bytes32 root) private _batchRoots;
    // validFrom | validUntil << 48 of each currently authorised anchorer, pushed by the registry.
    mapping(address account => uint256 window) private _anchorers;
    mapping(bytes32 uid => Record) private _records;

    /// @notice Batch `index` with Merkle root `root` over `count` UIDs follows `previousRoot`.
    event BatchAnchored(uint256 indexed index, bytes32 indexed root, bytes32 previousRoot, uint32 count);
    /// @notice An attestation was recorded directly; the data lets anyone rebuild its typed data.
    event Attested(
        bytes32 indexed uid,
        address indexed attester,
        uint8 indexed kind,
        bytes32 subject,
        bytes32[] refs,
        bytes32 payloadHash,
        uint64 issuedAt,
        uint64 expiresAt
    );
    /// @notice A directly recorded attestation was revoked by its attester.
    event Revoked(bytes32 indexed uid, address indexed attester, uint48 revokedAt);
    /// @notice `account` may (or may no longer) anchor batches.
    event AnchorerUpdated(address indexed account, bool authorised, uint48 validFrom, uint48 validUntil);
    /// @notice Registrar `by` named `successor` as the ledger that continues this one.
    event SuccessorSet(address indexed successor, address indexed by);

    /// @notice `account` is not a currently authorised anchorer.
    error NotAnchorer(address account);
    /// @notice Batch roots must be non-zero.
    error ZeroRoot();
    /// @notice A batch must hold at least one attestation.
    error EmptyBatch();
    /// @notice Batch `index` already has `existingRoot` (a fork or a replay).
    error BatchIndexTaken(uint256 index, bytes32 existingRoot);
    /// @notice Batch `index` cannot be anchored before batch `index - 1` (a gap).
    error BatchOutOfSequence(uint256 index);
    /// @notice Batch `index` names `given` as predecessor, but the chain holds `expected`.
    error WrongPredecessor(uint256 index, bytes32 expected, bytes32 given);
    /// @notice Only a current registrar (of the registry) may do this.
    error NotRegistrar(address caller);
    /// @notice The successor is already set (to `current`), or `next` is zero or this ledger.
    error InvalidSuccessor(address current, address next);
    /// @notice Only the registry pushes role changes.
    error NotRegistry(address caller);
    /// @notice `kind` is not a defined attestation kind.
    error UnknownKind(uint8 kind);
    /// @notice The signature does not belong to `attester` for attestation `uid`.
    error InvalidSignature(address attester, bytes32 uid);
    /// @notice `attester` held none of `requiredRoles` at `issuedAt` (or was suspended).
    error RoleMissing(address attester, uint8 kind, uint16 requiredRoles, uint64 issuedAt);
    /// @notice The attestation claims a signing time after this block.
    error IssuedInFuture(uint64 issuedAt, uint256 blockTime);
    /// @notice The signature is older than {maxSignatureAge}.
    error SignatureTooOld(uint64 issuedAt, uint256 oldestAccepted);
    /// @notice The attestation expired at `expiresAt` (or expires before it was issued).
    error AttestationExpired(uint64 expiresAt);
    /// @notice `uid` is already recorded.
    error AlreadyAttested(bytes32 uid);
    /// @notice `uid` was never recorded directly.
    error UnknownAttestation(bytes32 uid);
    /// @notice Only the original attester may revoke `uid`.
    error NotAttester(bytes32 uid, address caller, address attester);
    /// @notice `uid` was already revoked at `revokedAt`.
    error AlreadyRevoked(bytes32 uid, uint48 revokedAt);

    /// @param registry_ participant registry consulted for roles
    /// @param maxSignatureAge_ seconds a signature may be old when recorded directly
    constructor(IParticipantRegistry registry_, uint64 maxSignatureAge_) EIP712("ProvenanceLedger", "1") {
        registry = registry_;
        maxSignatureAge = maxSignatureAge_;
    }

    // -------------------------------------------------------------- batch anchoring

    /// @notice Anchors batch `index`: the Merkle root (OpenZeppelin StandardMerkleTree,
    /// leaf type bytes32) of `count` attestation UIDs, linked to batch `index - 1`.
    /// @param index the next batch index (0 for the first batch)
    /// @param root Merkle root of the batch's UIDs
    /// @param previousRoot root of batch `index - 1` (zero for the first batch)
    /// @param count number of UIDs in the batch
    function anchorBatch(uint256 index, bytes32 root, bytes32 previousRoot, uint32 count) external {
        uint256 window = _anchorers[msg.sender];
        // solhint-disable-next-line not-rely-on-time
        uint256 nowTs = block.timestamp;
        if (window == 0 || nowTs < uint48(window) || nowTs >= uint48(window >> 48)) revert NotAnchorer(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert EmptyBatch();
        bytes32 existing = _batchRoots[index];
        if (existing != bytes32(0)) revert BatchIndexTaken(index, existing);
        if (index == 0) {
            if (previousRoot != bytes32(0)) revert WrongPredecessor(0, bytes32(0), previousRoot);
        } else {
            bytes32 expected = _batchRoots[index - 1];
            if (expected == bytes32(0)) revert BatchOutOfSequence(index);
            if (expected != previousRoot) revert WrongPredecessor(index, expected, previousRoot);
        }
        _batchRoots[index] = root;
        emit BatchAnchored(index, root, previousRoot, count);
    }

    /// @notice Names `next` as the ledger that continues this one (once, by a registrar).
    /// Batches and records here stay as they are: bundles anchored here keep verifying
    /// against this contract.
    /// @param next address of the successor ledger contract
    function setSuccessor(address next) external {
        // solhint-disable-next-line not-rely-on-time
        if (!registry.hasRoleAt(msg.sender, Roles.REGISTRAR, uint48(block.timestamp))) revert NotRegistrar(msg.sender);
        if (successor != address(0) || next == address(0) || next == address(this)) {
            revert InvalidSuccessor(successor, next);
        }
        successor = next;
        emit SuccessorSet(next, msg.sender);
    }

    /// @notice Root of batch `index`, or zero when not (yet) anchored.
    function batchRoot(uint256 index) external view returns (bytes32) {
        return _batchRoots[index];
    }

    /// @notice True when `uid` is a leaf of batch `batchIndex` according to `proof`
    /// (a proof from the OpenZeppelin merkle-tree library StandardMerkleTree, leaf type bytes32).
    function verifyInclusion(bytes32 uid, bytes32[] calldata proof, uint256 batchIndex) external view returns (bool) {
        bytes32 root = _batchRoots[batchIndex];
        if (root == bytes32(0)) return false;
        // StandardMerkleTree leaf: keccak256(keccak256(abi.encode(values))), double-hashed
        // so a leaf can never be mistaken for an inner node.
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(uid))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice Whether `account` may anchor right now.
    function isAnchorer(address account) external view returns (bool) {
        uint256 window = _anchorers[account];
        // solhint-disable-next-line not-rely-on-time
        return window != 0 && block.timestamp >= uint48(window) && block.timestamp < uint48(window >> 48);
    }

    /// @inheritdoc IRoleListener
    function onEffectiveRolesChanged(address account, uint16 roles, uint48 validFrom, uint48 validUntil) external {
        if (msg.sender != address(registry)) revert NotRegistry(msg.sender);
        _setAnchorer(account, roles, validFrom, validUntil);
    }

    /// @notice Copies the registry's current view of `account` into the anchorer set.
    /// Anyone may call it; it only ever mirrors the registry.
    function syncAnchorer(address account) external {
        IParticipantRegistry.Participant memory p = registry.participant(account);
        uint16 roles = (p.suspended || p.retired) ? 0 : p.roles;
        _setAnchorer(account, roles, p.validFrom, p.validUntil);
    }

    // ------------------------------------------------------------ direct attestation

    /// @notice Records `a` on chain after checking, here, its signature (EOA or ERC-1271
    /// wallet; malleable signatures rejected) and that its attester held a role allowed
    /// for its kind at its signing time. Anyone may submit it.
    /// @return uid the EIP-712 digest of `a`
    function attest(Attestation calldata a, bytes calldata signature) external returns (bytes32 uid) {
        uid = hashAttestation(a);
        // solhint-disable-next-line not-rely-on-time
        uint256 nowTs = block.timestamp;
        if (a.issuedAt > nowTs) revert IssuedInFuture(a.issuedAt, nowTs);
        if (a.issuedAt + maxSignatureAge < nowTs) revert SignatureTooOld(a.issuedAt, nowTs - maxSignatureAge);
        if (a.expiresAt != 0 && a.expiresAt <= nowTs) revert AttestationExpired(a.expiresAt);
        if (_records[uid].attester != address(0)) revert AlreadyAttested(uid);
        uint16 required = AttestationKinds.requiredRoles(a.kind);
        if (!registry.hasAnyRoleAt(a.attester, required, uint48(a.issuedAt))) {
            revert RoleMissing(a.attester, a.kind, required, a.issuedAt);
        }
        if (!SignatureChecker.isValidSignatureNowCalldata(a.attester, uid, signature)) {
            revert InvalidSignature(a.attester, uid);
        }
        _records[uid] = Record({attester: a.attester, recordedAt: uint48(nowTs), revokedAt: 0});
        emit Attested(uid, a.attester, a.kind, a.subject, a.refs, a.payloadHash, a.issuedAt, a.expiresAt);
    }

    /// @notice Revokes the directly recorded attestation `uid`; only its attester may.
    function revoke(bytes32 uid) external {
        Record storage r = _records[uid];
        address attester = r.attester;
        if (attester == address(0)) revert UnknownAttestation(uid);
        if (msg.sender != attester) revert NotAttester(uid, msg.sender, attester);
        if (r.revokedAt != 0) revert AlreadyRevoked(uid, r.revokedAt);
        // solhint-disable-next-line not-rely-on-time
        uint48 nowTs = uint48(block.timestamp);
        r.revokedAt = nowTs;
        emit Revoked(uid, attester, nowTs);
    }

    /// @notice The record of a directly recorded attestation (all zero when unknown).
    function getRecord(bytes32 uid) external view returns (Record memory) {
        return _records[uid];
    }

    /// @notice The UID of `a`: its EIP-712 digest under this contract's domain. The one
    /// definition of a UID; the Python core computes the same digest.
    function hashAttestation(Attestation calldata a) public view returns (bytes32) {
        bytes32 typeHash = AttestationKinds.typeHash(a.kind);
        if (typeHash == bytes32(0)) revert UnknownKind(a.kind);
        if (a.expiresAt != 0 && a.expiresAt <= a.issuedAt) revert AttestationExpired(a.expiresAt);
        bytes32 structHash = keccak256(
            abi.encode(
                typeHash,
                a.attester,
                a.subject,
                keccak256(abi.encodePacked(a.refs)),
                a.payloadHash,
                a.issuedAt,
                a.expiresAt
            )
        );
        return _hashTypedDataV4(structHash);
    }

    /// @notice EIP-712 type hash of `kind` (zero when unknown).
    function typeHashOf(uint8 kind) external pure returns (bytes32) {
        return AttestationKinds.typeHash(kind);
    }

    /// @notice Roles of which an attester needs one to sign `kind` (zero when unknown).
    function requiredRolesOf(uint8 kind) external pure returns (uint16) {
        return AttestationKinds.requiredRoles(kind);
    }

    // ------------------------------------------------------------------- internal

    function _setAnchorer(address account, uint16 roles, uint48 validFrom, uint48 validUntil) private {
        bool authorised = roles & Roles.ANCHORER != 0;
        uint256 window = authorised ? uint256(validFrom) | (uint256(validUntil) << 48) : 0;
        if (_anchorers[account] == window) return;
        _anchorers[account] = window;
        emit AnchorerUpdated(account, authorised, validFrom, validUntil);
    }
}
