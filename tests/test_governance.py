"""Governance on a real chain, through the Python node: the registrar role handed in two
steps (propose, accept) to a smart-contract wallet that then governs; a ledger naming its
successor, followed by verifiers, while bundles anchored at the old ledger keep verifying
against it."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from ledger.audit import replay, store_source
from ledger.chain.accounts import dev_account
from ledger.chain.client import ChainRevert, call_and_send, contract_at, ledger_lineage
from ledger.chain.deploy import FOREVER, deploy_contract
from ledger.core import Ledger
from ledger.roles import Role
from ledger.verify import Verdict

from .scenario import Story

pytestmark = pytest.mark.chain

OWNER = dev_account(9)  # the key behind the wallet (in practice: a multisig's signers)


def as_wallet(ledger: Ledger, wallet: Any, target: Any, fn: Any) -> Any:
    data = fn._encode_transaction_data()
    return call_and_send(ledger.deployment.w3, OWNER, wallet.functions.execute(target.address, data))


def test_a_contract_wallet_takes_the_registrar_role_in_two_steps_and_names_the_ledgers_successor(
    ledger_env: Ledger,
) -> None:
    ledger = ledger_env
    w3 = ledger.deployment.w3
    registry, old_ledger = ledger.deployment.registry, ledger.deployment.ledger
    story = Story(ledger)
    ids = story.clean_export()
    story.anchor()
    bundle = ledger.export_bundle(ids["shipment"])

    wallet = contract_at(w3, "TestERC1271Wallet", deploy_contract(w3, OWNER, "TestERC1271Wallet", OWNER.address))
    registrar = dev_account(0)
    proposed = call_and_send(w3, registrar, registry.functions.proposeRegistrar(wallet.address))
    proposal = registry.events.RegistrarHandoverProposed().process_receipt(proposed, errors=DISCARD)[0]["args"]
    assert (proposal["from"], proposal["to"]) == (registrar.address, wallet.address)
    accepted = as_wallet(ledger, wallet, registry, registry.functions.acceptRegistrar(registrar.address))
    handover = registry.events.RegistrarHandoverAccepted().process_receipt(accepted, errors=DISCARD)[0]["args"]
    assert (handover["from"], handover["to"]) == (registrar.address, wallet.address)
    now = ledger.deployment.now()
    assert registry.functions.hasRoleAt(wallet.address, int(Role.REGISTRAR), now).call()
    assert not registry.functions.hasRoleAt(registrar.address, int(Role.REGISTRAR), now).call()
    with pytest.raises(ChainRevert) as refused:  # the old key governs no more
        call_and_send(
            w3, registrar, registry.functions.admit(dev_account(7).address, Web3.keccak(text="x"), 16, 0, FOREVER)
        )
    assert refused.value.error == "NotRegistrar"

    # A new ledger version; the wallet (now registrar) names it as the successor.
    new_ledger = deploy_contract(w3, OWNER, "ProvenanceLedger", registry.address, 86_400)
    as_wallet(ledger, wallet, old_ledger, old_ledger.functions.setSuccessor(new_ledger))
    assert ledger_lineage(w3, old_ledger.address) == [old_ledger.address, Web3.to_checksum_address(new_ledger)]
    assert ledger_lineage(w3, new_ledger) == [Web3.to_checksum_address(new_ledger)]

    # History is untouched: the bundle anchored at the old ledger still verifies there,
    # and the replay finds nothing to report.
    assert ledger.verify_bundle(bundle).verdict is Verdict.VERIFIED
    assert ledger.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED
    report, _ = replay(ledger.deployment, store_source(ledger))
    assert report.clean, [d.to_json() for d in report.discrepancies]
