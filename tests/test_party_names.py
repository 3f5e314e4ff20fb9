"""Parties by name in verdicts, with names only the chain vouches for, and the numbers
behind a custody fork.

The registry holds keccak256 of each participant's name; the registrar publishes the name
itself on chain (`publishName`, refused unless it hashes to the id). Who could lie: an
exporter presenting a bundle (it could claim a better-known name), a node operator (its
database), a registrar publishing a name the participant was not admitted under. Only the
last touches the chain, and the contract refuses it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ledger.chain.accounts import dev_account
from ledger.chain.client import ChainRevert, call_and_send
from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.verify import Verdict
from ledger.verify.service import chain_view_for, verify_bundle

from .scenario import Story, actor


def publish(ledger: Ledger, who: str, name: str) -> None:
    """The registrar (dev key 0) publishes `name` for `who`'s key."""
    registry = ledger.deployment.registry
    call_and_send(ledger.deployment.w3, dev_account(0), registry.functions.publishName(actor(who).address, name))


def forked(ledger: Ledger) -> tuple[Story, str, str]:
    """500 pieces made, all handed to the exporter, then shipped twice (to FR and DE)."""
    story = Story(ledger)
    made = story.produce([story.licence([story.asset()])], quantity=500)
    to_exporter = story.transfer([made], "maker", "exporter", 500)
    first = story.ship([to_exporter], 500)
    second = story.ship([to_exporter], 300, destination="DE")
    story.anchor()
    return story, first, second


def by_address(parties: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["address"].lower(): p for p in parties}


def test_a_fork_names_the_lot_quantity_each_hand_over_and_who_signed_it(ledger_env: Ledger) -> None:
    publish(ledger_env, "exporter", "exporter")
    publish(ledger_env, "maker", "maker")
    _story, first, second = forked(ledger_env)
    result = ledger_env.verify_shipment(second)
    assert result.verdict is Verdict.FLAGGED and result.codes == {Reason.CUSTODY_FORK}
    fork = next(f for f in result.findings if f.code is Reason.CUSTODY_FORK)
    facts = fork.to_json()["facts"]
    assert facts["lotQuantity"] == "500"
    assert [(h["uid"], h["quantity"]) for h in facts["handOvers"]] == [(first, "500"), (second, "300")]
    assert facts["handedOver"] == "800" and facts["shortfall"] == "300"
    exporter = actor("exporter").address
    assert all(
        h["by"] == {**h["by"], "address": exporter, "name": "exporter", "nameVerified": True}
        for h in facts["handOvers"]
    )
    # The sentence an officer reads says the same.
    assert "holds 500" in fork.message and "move 800 in all" in fork.message
    assert f"of 300 by exporter ({exporter})" in fork.message


def test_parties_carry_their_published_name_and_the_others_say_unknown(ledger_env: Ledger) -> None:
    publish(ledger_env, "maker", "maker")
    _story, _first, second = forked(ledger_env)
    result = ledger_env.verify_shipment(second)
    parties = by_address(result.to_json()["parties"])
    maker, exporter = actor("maker").address, actor("exporter").address
    assert parties[maker.lower()] == {
        "address": maker,
        "name": "maker",
        "nameVerified": True,
        "shown": f"maker ({maker})",
    }
    # Admitted as keccak("exporter"), but the name was never published: shown by address.
    assert parties[exporter.lower()]["name"] is None and parties[exporter.lower()]["nameVerified"] is False
    assert parties[exporter.lower()]["shown"] == f"{exporter} (name unknown: none published on chain)"
    text = "\n".join(result.text_lines())
    assert f"maker ({maker})" in text and f"{exporter} (name unknown" in text


def test_a_registrar_cannot_publish_a_name_the_participant_was_not_admitted_under(ledger_env: Ledger) -> None:
    with pytest.raises(ChainRevert) as refused:
        publish(ledger_env, "exporter", "Trusted Exporter Ltd")
    assert refused.value.error == "NameMismatch"
    _story, _first, second = forked(ledger_env)
    parties = by_address(ledger_env.verify_shipment(second).to_json()["parties"])
    assert parties[actor("exporter").address.lower()]["name"] is None


def test_an_exporter_naming_itself_in_its_bundle_is_shown_under_its_chain_name_only(ledger_env: Ledger) -> None:
    """The bundle is the exporter's to write: a name it claims for itself is ignored."""
    publish(ledger_env, "exporter", "exporter")
    story = Story(ledger_env)
    ids = story.clean_export()
    story.anchor()
    bundle: dict[str, Any] = copy.deepcopy(ledger_env.export_bundle(ids["shipment"]))
    exporter = actor("exporter").address
    bundle["parties"] = [{"address": exporter, "name": "Trusted Exporter Ltd", "nameVerified": True}]
    view = chain_view_for(
        ledger_env.deployment.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        ledger_env.deployment.manifest,
        1,
    )
    result = verify_bundle(bundle, view, ledger_env.policy)
    shown = {p["address"]: p for p in result.to_json()["parties"]}
    assert shown[exporter]["name"] == "exporter"
    carrier = actor("carrier").address  # a recipient of a hand-over, never named on chain
    assert shown[carrier]["name"] is None
    assert "Trusted Exporter Ltd" not in str(result.to_json())
