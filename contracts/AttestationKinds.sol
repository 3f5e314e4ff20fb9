// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Attestation kinds and their EIP-712 types
/// @notice The one on-chain definition of the attestation kinds, their EIP-712 type
/// strings, and the roles an attester needs to sign each. Every kind shares the same
/// envelope; the kind is the EIP-712 primary type name, so a wallet shows the signer
/// what it is signing ("Transfer", "Shipment", ...). The Python core carries the same
/// table and a test compares the two.
library AttestationKinds {
    uint8 internal constant IP_ASSET = 1;
    uint8 internal constant LICENCE = 2;
    uint8 internal constant PRODUCTION = 3;
    uint8 internal constant TRANSFER = 4;
    uint8 internal constant TRANSFER_ACCEPTANCE = 5;
    uint8 internal constant SHIPMENT = 6;
    uint8 internal constant REVOCATION = 7;
    uint8 internal constant CUSTOMS_FINDING = 8;
    uint8 internal constant WATCHLIST = 9;
    uint8 internal constant OBSERVATION = 10;
    uint8 internal constant MAX_KIND = 10;

    // The envelope after the type name; identical for every kind.
    // refs are earlier attestation UIDs (custody splits and merges reference several).
    // solhint-disable-next-line gas-small-strings
    string internal constant FIELDS =
        "(address attester,bytes32 subject,bytes32[] refs,bytes32 payloadHash,uint64 issuedAt,uint64 expiresAt)";

    bytes32 internal constant IP_ASSET_TYPEHASH = keccak256(abi.encodePacked("IpAsset", FIELDS));
    bytes32 internal constant LICENCE_TYPEHASH = keccak256(abi.encodePacked("Licence", FIELDS));
    bytes32 internal constant PRODUCTION_TYPEHASH = keccak256(abi.encodePacked("Production", FIELDS));
    bytes32 internal constant TRANSFER_TYPEHASH = keccak256(abi.encodePacked("Transfer", FIELDS));
    bytes32 internal constant TRANSFER_ACCEPTANCE_TYPEHASH =
        keccak256(abi.encodePacked("TransferAcceptance", FIELDS));
    bytes32 internal constant SHIPMENT_TYPEHASH = keccak256(abi.encodePacked("Shipment", FIELDS));
    bytes32 internal constant REVOCATION_TYPEHASH = keccak256(abi.encodePacked("Revocation", FIELDS));
    bytes32 internal constant CUSTOMS_FINDING_TYPEHASH = keccak256(abi.encodePacked("CustomsFinding", FIELDS));
    bytes32 internal constant WATCHLIST_TYPEHASH = keccak256(abi.encodePacked("WatchlistEntry", FIELDS));
    bytes32 internal constant OBSERVATION_TYPEHASH = keccak256(abi.encodePacked("Observation", FIELDS));

    uint16 internal constant CUSTODY_ROLES = Roles.MANUFACTURER | Roles.EXPORTER | Roles.CARRIER | Roles.IMPORTER;

    /// @notice EIP-712 type hash of `kind`, or zero for an unknown kind.
    function typeHash(uint8 kind) internal pure returns (bytes32) {
        if (kind == IP_ASSET) return IP_ASSET_TYPEHASH;
        if (kind == LICENCE) return LICENCE_TYPEHASH;
        if (kind == PRODUCTION) return PRODUCTION_TYPEHASH;
        if (kind == TRANSFER) return TRANSFER_TYPEHASH;
        if (kind == TRANSFER_ACCEPTANCE) return TRANSFER_ACCEPTANCE_TYPEHASH;
        if (kind == SHIPMENT) return SHIPMENT_TYPEHASH;
        if (kind == REVOCATION) return REVOCATION_TYPEHASH;
        if (kind == CUSTOMS_FINDING) return CUSTOMS_FINDING_TYPEHASH;
        if (kind == WATCHLIST) return WATCHLIST_TYPEHASH;
        if (kind == OBSERVATION) return OBSERVATION_TYPEHASH;
        return bytes32(0);
    }

    /// @notice Roles of which the attester must hold at least one, at signing time, to
    /// sign an attestation of `kind`; zero for an unknown kind.
    function requiredRoles(uint8 kind) internal pure returns (uint16) {
        if (kind == IP_ASSET || kind == WATCHLIST) return Roles.RIGHTS_HOLDER;
        // A licence comes from a rights holder or a sub-licensor (a licensed manufacturer);
        // whether sub-licensing was permitted is a verification rule, not a role.
        if (kind == LICENCE) return Roles.RIGHTS_HOLDER | Roles.MANUFACTURER;
        if (kind == PRODUCTION) return Roles.MANUFACTURER;
        if (kind == TRANSFER || kind == TRANSFER_ACCEPTANCE) return CUSTODY_ROLES;
        if (kind == SHIPMENT) return Roles.EXPORTER;
        if (kind == REVOCATION) return Roles.RIGHTS_HOLDER | CUSTODY_ROLES | Roles.CUSTOMS;
        if (kind == CUSTOMS_FINDING) return Roles.CUSTOMS;
        // What a supply-chain party saw (moves no goods): evidence only, off chain.
        if (kind == OBSERVATION) return Roles.RIGHTS_HOLDER | CUSTODY_ROLES;
        return 0;
    }
}
