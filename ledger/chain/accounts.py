"""Keys that sign: encrypted keystores for real use, well-known keys for the dev chain.

Plain private keys are accepted only for the local development chain's well-known
accounts (anvil's default mnemonic), and only when talking to a development chain id.
"""

from __future__ import annotations

import getpass
import json
import os
from functools import cache
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from .anvil import DEV_CHAIN_ID

# anvil's and Hardhat's default mnemonic: public knowledge, worthless outside a dev chain.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_IDS = frozenset({DEV_CHAIN_ID})


class KeyLoadError(Exception):
    """A key could not be loaded (wrong password, bad file, or a dev key off the dev chain)."""


@cache  # deriving from the mnemonic costs a PBKDF2 run (~3 ms); the accounts never change
def dev_account(index: int) -> LocalAccount:
    """Well-known development account `index` (0-9 are funded by anvil)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def require_dev_chain(w3: Web3) -> int:
    """Refuse to use well-known keys anywhere but a development chain: the chain actually
    connected (its `eth_chainId`), not what a manifest claims. Returns the chain id."""
    chain_id = int(w3.eth.chain_id)
    if chain_id not in DEV_CHAIN_IDS:
        raise KeyLoadError(f"well-known development keys are refused on chain {chain_id}; use an encrypted keystore")
    return chain_id


def load_keystore(path: Path, password: str | None = None) -> LocalAccount:
    """Decrypt an eth-account (Web3 Secret Storage) keystore file.

    The password comes from the argument (the settings' key password), else a prompt.
    """
    try:
        keyfile = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyLoadError(f"cannot read keystore {path}: {exc}") from exc
    if password is None:
        password = getpass.getpass(f"password for {path}: ")
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError as exc:
        raise KeyLoadError(f"cannot decrypt keystore {path}: wrong password or corrupted file") from exc
    account: LocalAccount = Account.from_key(key)
    return account


def write_keystore(account: LocalAccount, path: Path, password: str, *, kdf_iterations: int | None = None) -> Path:
    """Encrypt `account` into a keystore file readable only by its owner (mode 0600)."""
    if not password:
        raise KeyLoadError("refusing to write a keystore with an empty password")
    keyfile = Account.encrypt(account.key, password, iterations=kdf_iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(keyfile, out)
    return path
