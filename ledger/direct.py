"""Recording one attestation directly at the ledger contract, outside any batch (fresh
revocations, and `Ledger.anchor_direct`), and finding the transaction that did."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from .chain.client import Deployment, call_and_send
from .chain.fees import FeePolicy
from .chain.logs import AdaptiveLogFetcher
from .eip712 import Attestation

__all__ = ["contract_logs", "record_directly"]


def contract_logs(deployment: Deployment, event: Any, first_indexed: bytes) -> list[Any]:
    """The ledger's `event` logs whose first indexed argument is `first_indexed` (32 bytes),
    from the deployment block to the head, decoded. Through the adaptive fetcher: a
    provider refusing wide `eth_getLogs` ranges gets narrower ones."""
    fetcher = AdaptiveLogFetcher(
        deployment.w3,
        [deployment.manifest.ledger],
        topics=[event.topic, "0x" + first_indexed.hex()],
    )
    head = deployment.w3.eth.block_number
    return [
        event.process_log(log)
        for _, _, logs in fetcher.fetch(deployment.manifest.deployment_block, head)
        for log in logs
    ]


def record_directly(
    deployment: Deployment,
    sender: LocalAccount,
    attestation: Attestation,
    signature: bytes,
    uid: bytes,
    fees: FeePolicy | None = None,
) -> str | None:
    """Record one attestation directly at the ledger contract (which checks its signature
    and role itself) and return the transaction hash. Safe to repeat: if the chain already
    holds it, the transaction that recorded it is returned instead. None while the chain's
    clock is still before the signing time (the contract would refuse it)."""
    ledger = deployment.ledger
    if int(ledger.functions.getRecord(uid).call()[0], 16) != 0:
        logs = contract_logs(deployment, ledger.events.Attested(), uid)
        return "0x" + bytes(logs[0]["transactionHash"]).hex()
    if deployment.now() < attestation.issued_at:
        return None
    receipt = call_and_send(
        deployment.w3, sender, ledger.functions.attest(attestation.contract_args(), signature), fees=fees
    )
    return "0x" + bytes(receipt["transactionHash"]).hex()
