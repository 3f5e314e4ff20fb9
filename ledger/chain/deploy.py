"""Deploy the registry and the ledger, wire them, grant the initial roles."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.contracts import abi_hash, load_artifact
from ledger.roles import Role

from .client import call_and_send, contract_at, send_transaction
from .manifest import Manifest

FOREVER = 2**48 - 1
DEFAULT_MAX_SIGNATURE_AGE = 86_400


def _deploy(w3: Web3, account: LocalAccount, name: str, *args: Any) -> tuple[str, int]:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(*args).build_transaction({"from": account.address, "gas": 0})
    tx.pop("gas", None)
    receipt = send_transaction(w3, account, tx)
    assert not isinstance(receipt, bytes)
    return str(receipt["contractAddress"]), int(receipt["blockNumber"])


def deploy_contract(w3: Web3, account: LocalAccount, name: str, *args: Any) -> str:
    """Deploy shipped contract `name` with constructor `args`; returns its address."""
    return _deploy(w3, account, name, *args)[0]


def deploy(
    w3: Web3,
    registrar: LocalAccount,
    anchorer: str,
    *,
    registrar_id: bytes = Web3.keccak(text="registrar"),
    max_signature_age: int = DEFAULT_MAX_SIGNATURE_AGE,
) -> Manifest:
    """Deploy registry and ledger with `registrar` as first registrar, connect the
    ledger as the registry's role listener, admit `anchorer` with the anchorer role,
    and return the manifest (not yet saved)."""
    registry_address, first_block = _deploy(w3, registrar, "ParticipantRegistry", registrar.address, registrar_id)
    ledger_address, _ = _deploy(w3, registrar, "ProvenanceLedger", registry_address, max_signature_age)
    registry = contract_at(w3, "ParticipantRegistry", registry_address)
    call_and_send(w3, registrar, registry.functions.setRoleListener(ledger_address))
    call_and_send(
        w3,
        registrar,
        registry.functions.admit(
            Web3.to_checksum_address(anchorer),
            Web3.keccak(text=f"anchorer:{anchorer.lower()}"),
            int(Role.ANCHORER),
            0,
            FOREVER,
        ),
    )
    return Manifest(
        chain_id=w3.eth.chain_id,
        registry=registry_address,
        ledger=ledger_address,
        deployment_block=first_block,
        abi_hash=abi_hash(),
        registrar=registrar.address,
        anchorer=Web3.to_checksum_address(anchorer),
        max_signature_age=max_signature_age,
        deployed_at=int(w3.eth.get_block(first_block)["timestamp"]),
    )
