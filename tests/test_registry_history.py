"""Several registry changes in one second: the indexed history answers exactly as the contract.

The registry intersects the states a key had within one second T into its checkpoint at T
(suspended or retired at any moment of T counts for all of T) and applies the latest state
from T+1 on; it emits one EffectiveRolesChanged per checkpoint written. These stories put
several transactions into one anvil block (automine off) and compare the Python view,
rebuilt from those events by the indexer, with the contract's `rolesAt` second by second.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from web3 import Web3

from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send, send_transaction
from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.registry_view import Checkpoint, checkpoint_at
from ledger.roles import Role
from tests.conftest import ACTORS


def rpc(w3: Web3, method: str, *params: Any) -> Any:  # Any: JSON-RPC parameters and result
    return w3.provider.make_request(method, list(params))  # type: ignore[arg-type]


def later(w3: Web3, seconds: int = 10) -> None:
    """Makes the next block `seconds` later than the latest one. (anvil mines blocks within
    one wall-clock second with the same timestamp: the fixture's admissions share one.)"""
    rpc(w3, "evm_setNextBlockTimestamp", int(w3.eth.get_block("latest")["timestamp"]) + seconds)


def in_one_block(w3: Web3, account: LocalAccount, *calls: Any) -> int:
    """Sends every contract call of `calls` into one block, 10 s after the latest block (so
    apart from earlier changes); returns the block's timestamp.

    Gas is given, not estimated: an estimate against the latest block would not see the
    earlier transactions of the same block (a reinstatement after a pending suspension
    would estimate as a revert)."""
    nonce = w3.eth.get_transaction_count(account.address)
    hashes = []
    later(w3)
    rpc(w3, "evm_setAutomine", False)
    try:
        for offset, call in enumerate(calls):
            tx = call.build_transaction({"from": account.address, "gas": 600_000, "nonce": nonce + offset})
            sent = send_transaction(w3, account, tx, wait=False)
            assert isinstance(sent, bytes)
            hashes.append(sent)
        rpc(w3, "evm_mine")
    finally:
        rpc(w3, "evm_setAutomine", True)
    receipts = [w3.eth.wait_for_transaction_receipt(Hash32(h), timeout=10) for h in hashes]
    assert [r["status"] for r in receipts] == [1] * len(calls)
    assert len({r["blockNumber"] for r in receipts}) == 1
    return int(w3.eth.get_block(receipts[0]["blockNumber"])["timestamp"])


def address(name: str) -> str:
    return dev_account(ACTORS[name]).address


def test_same_second_changes_replay_exactly_to_the_contracts_roles_at(ledger_env: Ledger) -> None:
    ledger = ledger_env
    w3 = ledger.deployment.w3
    registry = ledger.deployment.registry.functions
    registrar = dev_account(0)
    successor = Web3.to_checksum_address("0x" + "5e" * 20)
    seconds: dict[str, int] = {}

    # The maker is suspended and reinstated within one second: suspended for that second.
    seconds["maker"] = in_one_block(
        w3, registrar, registry.suspend(address("maker"), b"f" * 32), registry.reinstate(address("maker"))
    )
    # The carrier changes three times within one second: only what it held throughout counts.
    seconds["carrier"] = in_one_block(
        w3,
        registrar,
        registry.grantRoles(address("carrier"), int(Role.EXPORTER)),
        registry.grantRoles(address("carrier"), int(Role.IMPORTER)),
        registry.revokeRoles(address("carrier"), int(Role.CARRIER)),
    )
    # (States C|E, C|E|I, E|I: at T only E. The third change narrows the checkpoint at T
    # after the second change wrote T+1, so `since` goes back in the event stream.)
    # Customs: a pair in second T, then one change alone in second T+1 (applies from T+1).
    seconds["customs"] = in_one_block(
        w3, registrar, registry.suspend(address("customs"), b"c" * 32), registry.reinstate(address("customs"))
    )
    rpc(w3, "evm_setNextBlockTimestamp", seconds["customs"] + 1)
    call_and_send(w3, registrar, registry.grantRoles(address("customs"), int(Role.AUDITOR)))
    # The importer, suspended, is reinstated and rotated out in one second: retired for it.
    call_and_send(w3, registrar, registry.suspend(address("importer"), b"i" * 32))
    seconds["importer"] = in_one_block(
        w3, registrar, registry.reinstate(address("importer")), registry.rotateKey(address("importer"), successor)
    )

    rpc(w3, "evm_mine")  # one confirmation on top of the last block
    ledger.indexer.sync()
    ledger.registry.invalidate()
    view = ledger.registry

    compared = 0
    for name, second in seconds.items():
        for account in (address(name), successor) if name == "importer" else (address(name),):
            for at in range(second - 2, second + 4):
                on_chain = registry.rolesAt(account, at).call()
                assert int(view.standing(account, at).roles) == on_chain, (name, account, at - second)
                compared += 1
    assert compared == 6 * 5

    # The reasons come from the same checkpoints.
    assert view.standing(address("maker"), seconds["maker"]).problem is Reason.ATTESTER_SUSPENDED
    assert view.standing(address("maker"), seconds["maker"] + 1).problem is None
    carrier = view.standing(address("carrier"), seconds["carrier"])
    assert (carrier.roles, carrier.problem) == (Role.EXPORTER, None)
    assert view.standing(address("carrier"), seconds["carrier"] + 1).roles == Role.EXPORTER | Role.IMPORTER
    assert view.standing(address("customs"), seconds["customs"]).problem is Reason.ATTESTER_SUSPENDED
    assert view.standing(address("customs"), seconds["customs"] + 1).roles == Role.CUSTOMS | Role.AUDITOR
    assert view.standing(address("importer"), seconds["importer"]).problem is Reason.KEY_NOT_VALID
    assert view.standing(successor, seconds["importer"]).roles == Role.IMPORTER
    # The newest checkpoint is still the current state (what the API shows as "latest").
    latest = view.history(address("maker"))[-1]
    assert (latest.roles, latest.suspended) == (int(Role.MANUFACTURER), False)


def test_checkpoint_at_takes_the_greatest_since_and_the_last_event_among_equals() -> None:
    def cp(since: int, roles: int) -> Checkpoint:
        return Checkpoint(since, roles, roles, False, False, 0, 2**48 - 1)

    # Event order of: change at 10; three changes at 20 (the second and third each
    # re-emit 20 and 21); then one change at 21 (replaces the carried state at 21).
    history = [cp(10, 1), cp(20, 3), cp(20, 1), cp(21, 7), cp(20, 1), cp(21, 5), cp(21, 4)]
    assert checkpoint_at(history, 9) is None
    assert checkpoint_at(history, 10) == cp(10, 1)
    assert checkpoint_at(history, 20) is history[4]
    assert checkpoint_at(history, 21) is history[6]
    assert checkpoint_at(history, 99) is history[6]
