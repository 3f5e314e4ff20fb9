"""Contract access over JSON-RPC: connect, send signed transactions, decode reverts.

Transactions are signed locally (the node never holds keys). A revert is raised as
`ChainRevert` carrying the decoded custom error (`WrongPredecessor(index, expected,
given)`), so callers and users see the contract's facts, not raw bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound
from web3.types import TxReceipt

from ledger.contracts import CONTRACT_NAMES, load_artifact

from .fees import FeeCeilingExceeded, FeePolicy, Fees, base_fee, is_already_known, is_nonce_consumed
from .manifest import Manifest

log = logging.getLogger(__name__)


class ChainUnavailable(Exception):
    """The RPC endpoint could not be reached or did not answer."""


class ChainRevert(Exception):
    """A contract call reverted; `error` is the custom error name, `args` its values."""

    def __init__(self, error: str, args: tuple[Any, ...], raw: str = "") -> None:
        self.error = error
        self.args_ = args
        self.raw = raw
        super().__init__(f"{error}{args}" if args else error)


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name)["abi"]:
            if entry["type"] != "error":
                continue
            types = [i["type"] for i in entry["inputs"]]
            selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
            table[selector] = (entry["name"], types)
    return table


def decode_revert(data: str | bytes | None) -> ChainRevert:
    """Turn revert data into a `ChainRevert` naming the contract's custom error."""
    if isinstance(data, str):
        raw = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else b""
    else:
        raw = data or b""
    if len(raw) >= 4 and raw[:4] in _error_table():
        name, types = _error_table()[raw[:4]]
        try:
            values = abi_decode(types, raw[4:])
        except Exception:  # noqa: BLE001 - undecodable arguments still name the error
            values = ()
        shown = tuple("0x" + v.hex() if isinstance(v, bytes) else v for v in values)
        return ChainRevert(name, shown, "0x" + raw.hex())
    return ChainRevert("Reverted", (), "0x" + raw.hex())


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A Web3 connection to `rpc_url`; raises `ChainUnavailable` if it does not answer."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - probe
    except Exception as exc:
        raise ChainUnavailable(f"no answer from {rpc_url}: {exc}") from exc
    return w3


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract object for the shipped ABI of `name` at `address`."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name)["abi"])


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    tx: dict[str, Any],
    *,
    wait: bool = True,
    timeout: float = 60.0,
    fees: FeePolicy | None = None,
) -> TxReceipt | bytes:
    """Sign `tx` with `account`, send it, and (by default) wait for its receipt.

    Gas is estimated first, so a call that would revert raises `ChainRevert` before
    anything is sent. Fees follow EIP-1559 under `fees` (the defaults when None): the
    base fee from the chain, the policy's tip, its ceiling (`FeeCeilingExceeded`, nothing
    sent). While waiting, a transaction not mined within `fees.stuck_after` seconds is
    replaced with raised fees under the same nonce (never a second nonce), as long as the
    ceiling allows; the receipt of whichever version is mined is returned. Returns the
    transaction hash with `wait=False`.
    """
    policy = fees or FeePolicy()
    tx = dict(tx)
    tx.setdefault("from", account.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    try:
        if "gas" not in tx:
            # Headroom: nodes estimate against the latest block's timestamp, and a registry
            # change in a new second writes a fresh checkpoint slot (+22,100 gas) the
            # estimate did not see. Unused gas is not charged.
            tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 40_000  # type: ignore[arg-type]
    except (ContractCustomError, ContractLogicError) as exc:
        raise decode_revert(exc.data if isinstance(exc.data, str) else None) from exc
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        current = policy.quote(base_fee(w3))
        tx.update(current.fields())
    else:
        current = Fees(int(tx.get("maxFeePerGas", tx.get("gasPrice", 0))), int(tx.get("maxPriorityFeePerGas", 0)))
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    if not wait:
        return bytes(tx_hash)
    sent = [bytes(tx_hash)]
    deadline = time.monotonic() + timeout
    while True:
        replace_at = min(deadline, time.monotonic() + policy.stuck_after)
        receipt = _first_receipt(w3, sent, replace_at)
        if receipt is not None:
            break
        if time.monotonic() >= deadline:
            raise ChainUnavailable(f"transaction {sent[-1].hex()} (nonce {tx['nonce']}) not mined within {timeout}s")
        try:  # stuck: the same transaction, same nonce, higher fees
            current = policy.quote(base_fee(w3), previous=current)
        except FeeCeilingExceeded as exc:
            log.error("transaction %s stuck and not replaceable: %s", sent[-1].hex(), exc)
            continue
        tx.update(current.fields())
        signed = account.sign_transaction(tx)
        try:
            sent.append(bytes(w3.eth.send_raw_transaction(signed.raw_transaction)))
            log.warning(
                "transaction %s not mined in %.0fs; replaced by %s (nonce %d, max fee %d wei, tip %d wei)",
                sent[-2].hex(),
                policy.stuck_after,
                sent[-1].hex(),
                tx["nonce"],
                current.max_fee,
                current.tip,
            )
        except Exception as exc:
            if not (is_nonce_consumed(exc) or is_already_known(exc)):
                raise
    if receipt["status"] != 1:
        raise ChainRevert("Reverted", (), "")
    return receipt


def _first_receipt(w3: Web3, hashes: list[bytes], until: float) -> TxReceipt | None:
    """The receipt of whichever of `hashes` is mined first, polling until `until`."""
    while True:
        for tx_hash in hashes:
            try:
                return w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                continue
        if time.monotonic() >= until:
            return None
        time.sleep(0.05)


def call_and_send(w3: Web3, account: LocalAccount, fn: Any, *, fees: FeePolicy | None = None, **tx: Any) -> TxReceipt:
    """Build a transaction for contract function call `fn`, send it, return the receipt."""
    built = fn.build_transaction({"from": account.address, "gas": 0, **tx})
    built.pop("gas", None)
    for key in ("maxFeePerGas", "maxPriorityFeePerGas"):  # priced by the fee policy instead
        if key not in tx:
            built.pop(key, None)
    receipt = send_transaction(w3, account, built, fees=fees)
    assert not isinstance(receipt, bytes)
    return receipt


@dataclass
class Deployment:
    """Web3 handles for a deployed registry and ledger, described by its manifest."""

    w3: Web3
    manifest: Manifest

    @cached_property
    def registry(self) -> Contract:
        # Built once: web3 spends ~10 ms validating an ABI into a contract object.
        return contract_at(self.w3, "ParticipantRegistry", self.manifest.registry)

    @cached_property
    def ledger(self) -> Contract:
        return contract_at(self.w3, "ProvenanceLedger", self.manifest.ledger)

    def check_chain(self) -> None:
        """Raise if the connected chain is not the manifest's, or the ledger is absent."""
        chain_id = self.w3.eth.chain_id
        if chain_id != self.manifest.chain_id:
            raise ChainUnavailable(f"connected to chain {chain_id}, manifest is for chain {self.manifest.chain_id}")
        if not self.w3.eth.get_code(Web3.to_checksum_address(self.manifest.ledger)):
            raise ChainUnavailable(f"no ledger contract at {self.manifest.ledger} on chain {chain_id}")

    def now(self) -> int:
        """Timestamp of the latest block (the chain's clock)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])


def ledger_lineage(w3: Web3, address: str, limit: int = 16) -> list[str]:
    """The ledger at `address` followed by the successors each names (`successor()`, set
    once by a registrar), oldest first: where anchoring went on after a contract upgrade.
    A bundle anchored at an earlier ledger is still verified against that ledger (its
    history is never rewritten); the pointer only tells verifiers where to look next."""
    lineage: list[str] = [Web3.to_checksum_address(address)]
    while len(lineage) <= limit:
        following = str(contract_at(w3, "ProvenanceLedger", lineage[-1]).functions.successor().call())
        if int(following, 16) == 0:
            return lineage
        following = str(Web3.to_checksum_address(following))
        if following in lineage:
            raise ChainUnavailable(f"ledger successors form a cycle: {' -> '.join([*lineage, following])}")
        lineage.append(following)
    raise ChainUnavailable(f"more than {limit} successive ledgers from {address}")


def wait_for_rpc(rpc_url: str, timeout: float = 30.0) -> Web3:
    """Connect to `rpc_url`, retrying until it answers or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(rpc_url)
        except ChainUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
