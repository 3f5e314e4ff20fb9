"""The verification engine: runs the registered checks over a shipment's evidence and
returns one verdict.

Fail-closed by construction: the verdict starts from the set of checks the policy makes
mandatory, and a mandatory check that is missing, errored, or skipped can only give
UNVERIFIABLE. An empty evidence set gives UNVERIFIABLE, never VERIFIED.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from sqlalchemy import Connection

from ledger.chain.view import ChainSnapshot, ChainView
from ledger.completeness import Watermark
from ledger.eip712 import Domain
from ledger.licence_output import LicenceOutputs
from ledger.reasons import Reason
from ledger.signatures import SignatureChecker
from ledger.trouble import endpoint_of, is_chain_trouble, is_store_trouble, store_trouble, trouble_sentence

from .checks import REGISTRY
from .context import ChainFactsUnavailable, Context, ancestors
from .evidence import Evidence
from .model import CheckResult, CheckStatus, Finding, VerificationResult
from .policy import VerificationPolicy, decide
from .risk import ShipmentHistory, risk


def verify_evidence(
    evidence: Evidence,
    *,
    domain: Domain,
    chain: ChainView | None,
    checker: SignatureChecker,
    policy: VerificationPolicy,
    history: ShipmentHistory | None = None,
    now: int | None = None,
    completeness: Callable[[ChainSnapshot], Watermark] | None = None,
    licence_outputs: LicenceOutputs | None = None,
    caught_up: bool = False,
) -> VerificationResult:
    """Run every check over `evidence` and return the verdict, findings and risk score.

    Every on-chain fact comes from one snapshot of `chain`, read once here; if it cannot
    be read, every check that needs the chain is an ERROR (so the verdict cannot be
    VERIFIED). `completeness` measures the node's copy of the ledger against that snapshot;
    without it the completeness check is SKIPPED. `caught_up`: the caller has already
    caught `licence_outputs` up for this verification (`catch_up`, through the connection
    that read the evidence), so it is not read again here."""
    snapshot: ChainSnapshot | None = None
    chain_error = ""
    if chain is not None:
        try:
            snapshot = chain.snapshot()
            if _claims_beyond(snapshot, evidence):
                snapshot = chain.snapshot(max_age=0)  # anchored a moment ago: read the head again
        except Exception as exc:  # noqa: BLE001 - any chain failure means the facts are unknown
            chain_error = _chain_sentence(chain, exc)
    watermark: Watermark | None = None
    completeness_error = ""
    if completeness is not None:
        if snapshot is None:
            completeness_error = "the chain could not be read, so the node's copy cannot be measured against it"
        else:
            try:
                watermark = completeness(snapshot)
            except Exception as exc:  # noqa: BLE001 - a store that cannot be measured is not complete
                completeness_error = f"the node's copy could not be measured: {_trouble_or_bug(exc)}"
    if licence_outputs is not None and not caught_up:
        catch_up(licence_outputs)
    ctx = Context(
        evidence,
        domain,
        chain,
        snapshot,
        checker,
        policy,
        int(time.time()) if now is None else now,
        chain_error,
        ancestors(evidence),
        completeness=watermark,
        completeness_error=completeness_error,
        licence_outputs=licence_outputs,
    )
    checks: list[CheckResult] = []
    for name, check in REGISTRY.items():
        try:
            result = check(ctx)
        except ChainFactsUnavailable as exc:
            result = CheckResult(name, CheckStatus.ERROR, [Finding(Reason.CHAIN_UNAVAILABLE, str(exc))], str(exc))
        except Exception as exc:  # noqa: BLE001 - a crashing check is an ERROR, never a pass
            if is_chain_trouble(exc):  # the chain went away after the snapshot was read
                said = _chain_sentence(chain, exc)
                result = CheckResult(name, CheckStatus.ERROR, [Finding(Reason.CHAIN_UNAVAILABLE, said)], said)
            else:
                result = CheckResult(name, CheckStatus.ERROR, detail=_trouble_or_bug(exc))
        checks.append(result)
        if result.distrusts:
            ctx = dataclasses.replace(ctx, untrusted=ctx.untrusted | result.distrusts)
    verdict = decide(checks, policy)
    score, factors = risk(checks, evidence, history)
    expiries = [r.attestation.expires_at for r in evidence.records.values() if r.attestation.expires_at > ctx.now]
    return VerificationResult(
        evidence.shipment,
        verdict,
        score,
        checks,
        factors,
        ctx.now,
        float(min(expiries)) if expiries else float("inf"),
        snapshot.head if snapshot is not None else -1,
        watermark.to_json() if watermark is not None else None,
    )


def catch_up(licence_outputs: LicenceOutputs, conn: Connection | None = None) -> int:
    """What was stored since the last verification (productions, licences, revocations):
    one read, through `conn` when given, and this verification's licence checks answer as
    of it; returns the store's newest row id as of that read, or -1 when it failed. If it
    fails, the licence view refuses to answer until a catch-up succeeds, so the licensing
    check is an ERROR (never an answer from a stale view)."""
    try:
        return licence_outputs.catch_up(conn)
    except Exception:  # noqa: BLE001 - reported by the licensing check (the view refuses to answer)
        return -1


def _claims_beyond(snapshot: ChainSnapshot, evidence: Evidence) -> bool:
    """True when a record claims an anchor the snapshot does not hold (yet)."""
    for record in evidence.records.values():
        anchor = record.anchor or {}
        if anchor.get("type") == "direct" and snapshot.direct(record.uid) is None:
            return True
        index = anchor.get("batchIndex")
        if isinstance(index, int) and snapshot.batch(index) is None:
            return True
    return False


def _trouble_or_bug(exc: BaseException) -> str:
    """A database that could not be read, as the sentence every path uses; anything else
    is a fault in the node, named by its exception so it can be reported."""
    return store_trouble("(the node's database)") if is_store_trouble(exc) else f"{type(exc).__name__}: {exc}"


def _chain_sentence(chain: object, exc: BaseException) -> str:
    """The one sentence for chain trouble, naming the RPC address `chain` reads from."""
    deployment = getattr(chain, "deployment", None)
    return trouble_sentence(exc, chain=endpoint_of(deployment.w3) if deployment is not None else "")
