// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title A hostile ERC-1271 wallet (tests only)
/// @notice Its signature check burns all the gas it is given and never answers: a
/// verifier must cap the gas and time it lends such a wallet, and distrust only the
/// wallet's own records.
contract TestGasBurnerWallet is IERC1271 {
    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata) external view returns (bytes4) {
        bytes32 h = hash;
        while (gasleft() > 0) {
            h = keccak256(abi.encode(h));
        }
        return bytes4(h);
    }
}
