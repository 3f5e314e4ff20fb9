"""Verification entry points: a shipment in the store, or a bundle with only a chain.

`verify_bundle` needs no database and no service: it rebuilds the registry history from
the chain into a throw-away SQLite file, reads anchors and revocations from the chain,
and runs the same engine as the service, so both give the same verdict and findings.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from web3 import Web3

from ledger.chain.client import Deployment
from ledger.chain.manifest import Manifest
from ledger.eip712 import Domain
from ledger.indexer import ChainIndexer
from ledger.kinds import Kind
from ledger.reasons import Reason
from ledger.registry_view import RegistryView
from ledger.signatures import SignatureChecker, web3_erc1271_caller
from ledger.store.db import make_engine, migrate, session_factory

from .chainview import ChainView
from .engine import ShipmentHistory, VerificationPolicy, verify_evidence
from .evidence import Evidence, EvidenceError, evidence_from_bundle, evidence_from_store
from .model import CheckResult, CheckStatus, Finding, Verdict, VerificationResult


def deployment_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "chainId": manifest.chain_id,
        "ledger": manifest.ledger,
        "registry": manifest.registry,
        "deploymentBlock": manifest.deployment_block,
    }


def _attach_chain_revocations(evidence: Evidence, chain: ChainView) -> None:
    try:
        evidence.chain_revocations = chain.revocations()
    except Exception:  # noqa: BLE001 - the anchoring check reports the chain as unavailable
        evidence.chain_revocations = {}


def shipment_history(ledger: Any, evidence: Evidence) -> ShipmentHistory:
    """The exporter's earlier shipments in the store (excluding this one)."""
    import json

    from ledger.store.models import AttestationRow

    shipment = evidence.records[evidence.shipment]
    with ledger.sessions() as session:
        rows = session.execute(
            select(AttestationRow.uid, AttestationRow.disclosed)
            .where(
                AttestationRow.kind == int(Kind.SHIPMENT),
                AttestationRow.attester == shipment.attester.lower(),
                AttestationRow.uid != evidence.shipment,
                AttestationRow.issued_at <= shipment.attestation.issued_at,
            )
            .limit(1000)
        ).all()
    destinations, quantities = set(), []
    for row in rows:
        fields = json.loads(row.disclosed)
        if "destination" in fields:
            destinations.add(fields["destination"]["value"])
        quantity = fields.get("quantity", {}).get("value")
        if isinstance(quantity, int | float):
            quantities.append(float(quantity))
    return ShipmentHistory(len(rows), frozenset(destinations), tuple(quantities))


def verify_in_store(
    ledger: Any, shipment_uid: str, policy: VerificationPolicy | None = None, chain: ChainView | None = None
) -> VerificationResult:
    """Verify a shipment recorded in `ledger`'s store (a `ledger.core.Ledger`)."""
    evidence = evidence_from_store(ledger, shipment_uid)
    chain = chain or ChainView(ledger.deployment)
    _attach_chain_revocations(evidence, chain)
    return verify_evidence(
        evidence,
        domain=ledger.domain,
        chain=chain,
        registry=ledger.registry,
        checker=ledger.checker,
        policy=policy or VerificationPolicy(confirmations=ledger.settings.confirmations),
        refresh_registry=ledger.refresh_registry,
        history=shipment_history(ledger, evidence),
    )


def export_bundle(ledger: Any, shipment_uid: str) -> dict[str, Any]:
    """The self-contained proof bundle of a shipment in `ledger`'s store."""
    evidence = evidence_from_store(ledger, shipment_uid)
    return evidence.to_bundle(deployment_json(ledger.deployment.manifest), int(time.time()))


def unverifiable(shipment: str, code: Reason, message: str) -> VerificationResult:
    check = CheckResult("evidence", CheckStatus.ERROR, [Finding(code, message)], message)
    return VerificationResult(shipment, Verdict.UNVERIFIABLE, 100, [check], [], int(time.time()))


def verify_bundle(
    bundle: object, rpc_url: str, trusted: Manifest, policy: VerificationPolicy | None = None, *, w3: Web3 | None = None
) -> VerificationResult:
    """Verify a proof bundle against the chain at `rpc_url` and the `trusted` deployment.

    A bundle that names another deployment than the trusted one is UNVERIFIABLE
    (WRONG_CONTRACT): the officer decides which ledger to trust, never the bundle.
    """
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
    w3 = w3 or Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    deployment = Deployment(w3, trusted)
    chain = ChainView(deployment)
    _attach_chain_revocations(evidence, chain)
    policy = policy or VerificationPolicy()
    with tempfile.TemporaryDirectory(prefix="provenance-verify-") as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'registry.db'}")
        try:
            migrate(engine)
            sessions = session_factory(engine)
            indexer = ChainIndexer(deployment, sessions, confirmations=policy.confirmations)
            registry = RegistryView(sessions)

            def refresh(_needed: int) -> None:
                indexer.sync()
                registry.invalidate()

            return verify_evidence(
                evidence,
                domain=Domain(trusted.chain_id, trusted.ledger),
                chain=chain,
                registry=registry,
                checker=SignatureChecker(web3_erc1271_caller(w3)),
                policy=policy,
                refresh_registry=refresh,
            )
        finally:
            engine.dispose()
