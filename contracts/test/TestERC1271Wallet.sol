// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title Minimal ERC-1271 smart-contract wallet (tests only)
/// @notice Accepts a signature when it recovers to the wallet's owner key, so tests can
/// exercise smart-contract signers. Can also forward a call (to revoke as the wallet).
contract TestERC1271Wallet is IERC1271 {
    /// @notice The key whose signatures this wallet accepts.
    address public immutable owner;

    /// @notice The caller is not the owner.
    error NotOwner(address caller);
    /// @notice The forwarded call failed.
    error CallFailed(bytes reason);

    /// @param owner_ key whose signatures the wallet accepts
    constructor(address owner_) {
        owner = owner_;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err, ) = ECDSA.tryRecoverCalldata(hash, signature);
        return (err == ECDSA.RecoverError.NoError && recovered == owner) ? this.isValidSignature.selector : bytes4(0);
    }

    /// @notice Calls `target` with `data` as the wallet (owner only).
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok, bytes memory result) = target.call(data);
        if (!ok) revert CallFailed(result);
        return result;
    }
}
