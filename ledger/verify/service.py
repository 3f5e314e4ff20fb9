"""Verification entry points: a shipment in the store, or a bundle with only a chain.

Both read every on-chain fact — registry history, batch roots, direct records,
revocations — from a `ChainView` (the chain's logs, mirrored in memory), never from
the node's database, and both take the one `VerificationPolicy` built from the
settings. `verify_bundle` needs no database and no service: the node passes its own
chain view (kept current across requests), the command line a fresh one.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection
from web3 import Web3

from ledger.chain.client import Deployment
from ledger.chain.manifest import Manifest
from ledger.chain.view import ChainView
from ledger.eip712 import Domain
from ledger.fields import exact_quantity
from ledger.ports import Node, StoreReader
from ledger.reasons import Reason
from ledger.signatures import SignatureChecker, web3_erc1271_caller

from .engine import catch_up, verify_evidence
from .evidence import Evidence, EvidenceError, Record, completed_from_store, evidence_from_bundle, evidence_from_store
from .model import CheckResult, CheckStatus, Finding, Verdict, VerificationResult
from .parties import parties_json, parties_of
from .policy import VerificationPolicy
from .risk import ShipmentHistory


def deployment_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "chainId": manifest.chain_id,
        "ledger": manifest.ledger,
        "registry": manifest.registry,
        "deploymentBlock": manifest.deployment_block,
    }


def shipment_history(shipment: Record, conn: Connection) -> ShipmentHistory:
    """The exporter's other shipments as the store's running aggregates hold them
    (`ledger.store.aggregates`): one or two primary-key reads, whatever the exporter's
    history. Risk signals only, never a verdict. The aggregates count every stored
    shipment, this one included when its fields are public, so it is taken out here."""
    from ledger.store.aggregates import exporter_history

    kept = exporter_history(conn, shipment.attester, shipment.field("destination"))
    public = set(shipment.disclosure.fields) - shipment.confidential
    destinations = {d for d, n in kept.destinations.items() if n - (d == shipment.field("destination")) > 0}
    if "destination" not in public:  # not counted for this shipment: nothing to take out
        destinations = set(kept.destinations)
    values = [v for uid, v in kept.recent_quantities if uid != shipment.uid]
    quantities: tuple[Fraction, ...] = ()
    if values:
        typical = exact_quantity(sorted(values)[len(values) // 2])
        quantities = (typical,) if typical is not None else ()
    return ShipmentHistory(max(0, kept.shipments - 1), frozenset(destinations), quantities)


def verify_in_store(
    ledger: Node, shipment_uid: str, policy: VerificationPolicy, chain: ChainView | None = None
) -> VerificationResult:
    """Verify a shipment recorded in `ledger`'s store (a `ledger.core.Ledger`)."""
    # The evidence and the exporter's history in one session (one connection, not one
    # each), released before the checks run (they read the licence views through their own).
    with ledger.sessions() as session:
        evidence, history = read_case(ledger, shipment_uid, session.connection())
        catch_up(ledger.licence_outputs, session.connection())  # last: a failure here spoils no read
    return verify_case(ledger, evidence, history, policy, chain)


def read_case(ledger: StoreReader, shipment_uid: str, conn: Connection) -> tuple[Evidence, ShipmentHistory]:
    """The shipment's evidence and its exporter's history, read through `conn` (through
    which the caller also catches the node's licence view up, `engine.catch_up`: one
    connection for the whole read). Raises StoreCorrupted / EvidenceError as
    `evidence_from_store` does."""
    evidence = evidence_from_store(ledger, shipment_uid, conn)
    return evidence, shipment_history(evidence.records[evidence.shipment], conn)


def verify_case(
    ledger: Node,
    evidence: Evidence,
    history: ShipmentHistory,
    policy: VerificationPolicy,
    chain: ChainView | None = None,
) -> VerificationResult:
    """The verdict on evidence read from `ledger`'s store (`read_case`), the licence view
    caught up through the same connection (`engine.catch_up`)."""
    chain = chain or ledger.chain_view
    result = verify_evidence(
        evidence,
        domain=ledger.domain,
        chain=chain,
        checker=ledger.checker,
        policy=policy,
        history=history,
        completeness=ledger.completeness.watermark,
        licence_outputs=ledger.licence_outputs,
        caught_up=True,
    )
    return with_parties(result, evidence, chain)


def with_parties(result: VerificationResult, evidence: Evidence, chain: ChainView) -> VerificationResult:
    """`result` naming every party of `evidence` by its on-chain name, or as unknown when
    the verdict could not read the chain. A published name never changes (it is the
    preimage of the participant's id), so the latest snapshot names the parties of any
    verdict that read the chain."""
    snapshot = chain.last_snapshot if result.chain_head >= 0 else None
    result.parties = parties_json(snapshot, parties_of(evidence))
    return result


def export_bundle(ledger: Node, shipment_uid: str) -> dict[str, Any]:
    """The self-contained proof bundle of a shipment in `ledger`'s store."""
    evidence = evidence_from_store(ledger, shipment_uid)
    return evidence.to_bundle(deployment_json(ledger.deployment.manifest), int(time.time()))


def unverifiable(shipment: str, code: Reason, message: str) -> VerificationResult:
    check = CheckResult("evidence", CheckStatus.ERROR, [Finding(code, message)], message)
    return VerificationResult(shipment, Verdict.UNVERIFIABLE, 100, [check], [], int(time.time()))


def chain_view_for(rpc_url: str, trusted: Manifest, confirmations: int) -> ChainView:
    """A fresh chain view of the `trusted` deployment at `rpc_url` (for the command line)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    return ChainView(Deployment(w3, trusted), cache_depth=confirmations)


def verify_bundle(
    bundle: object,
    chain: ChainView,
    policy: VerificationPolicy,
    checker: SignatureChecker | None = None,
    *,
    complete_from: Node | None = None,
) -> VerificationResult:
    """Verify a proof bundle against the chain behind `chain` and its trusted deployment.

    A bundle that names another deployment than the trusted one is UNVERIFIABLE
    (WRONG_CONTRACT): the officer decides which ledger to trust, never the bundle. With
    `complete_from` (a `ledger.core.Ledger` holding a copy of the public ledger), the
    evidence is completed from that copy and its completeness is measured; without it,
    the completeness check is SKIPPED and the verdict cannot be VERIFIED.
    """
    trusted = chain.deployment.manifest
    shipment = str(bundle.get("shipment", "")) if isinstance(bundle, dict) else ""
    try:
        evidence = evidence_from_bundle(bundle)
    except EvidenceError as exc:
        return unverifiable(shipment, Reason.MALFORMED, str(exc))
    claimed = bundle.get("deployment", {}) if isinstance(bundle, dict) else {}
    if (
        not isinstance(claimed, dict)
        or str(claimed.get("ledger", "")).lower() != trusted.ledger.lower()
        or claimed.get("chainId") != trusted.chain_id
    ):
        return unverifiable(
            shipment,
            Reason.WRONG_CONTRACT,
            f"the bundle names ledger {claimed.get('ledger') if isinstance(claimed, dict) else None} "
            f"on chain {claimed.get('chainId') if isinstance(claimed, dict) else None}; the trusted "
            f"ledger is {trusted.ledger} on chain {trusted.chain_id}",
        )
    if complete_from is not None:
        evidence = completed_from_store(complete_from, evidence)
    result = verify_evidence(
        evidence,
        domain=Domain(trusted.chain_id, trusted.ledger),
        chain=chain,
        checker=checker or SignatureChecker(web3_erc1271_caller(chain.deployment.w3)),
        policy=policy,
        completeness=complete_from.completeness.watermark if complete_from is not None else None,
        licence_outputs=complete_from.licence_outputs if complete_from is not None else None,
    )
    return with_parties(result, evidence, chain)
