"""The `/v1` endpoints. Each one parses, authorises through a dependency, calls the
ledger core, and shapes the response; none holds domain logic."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, TypeAdapter

from ledger import queries
from ledger.access import ApiKey
from ledger.core import Ledger
from ledger.disclosure import DisclosureError, UnknownAttestation, check_disclosure
from ledger.hashing import checksum_address
from ledger.ingest import Accepted, Rejected
from ledger.kinds import Kind
from ledger.reasons import Reason
from ledger.roles import Role
from ledger.verify.evidence import EvidenceError

from .deps import get_ledger, optional_key, require
from .schemas import KIND_FIELD_MODELS, BatchResult, FieldProblem, KindCheck, Submission, SubmissionResult, Verification

PROBLEM_RESPONSE = {
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "reason": {"type": "string"},
                    "field": {"type": "string"},
                },
            }
        }
    }
}
# Every /v1 router declares the problem responses it may give (schemathesis checks them).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, **PROBLEM_RESPONSE}
    for status, description in [
        (400, "unparseable or absurdly nested body"),
        (401, "no, unknown or revoked API key"),
        (403, "the key lacks the scope"),
        (404, "not found"),
        (413, "body or batch too large"),
        (422, "invalid or rejected (reason code and field given)"),
        (429, "rate limit exceeded"),
        (503, "chain or database unavailable; nothing was stored; retry after Retry-After"),
    ]
}
router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
UID = Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="attestation UID (EIP-712 digest)")


def _metrics(request: Request) -> Any:
    return request.app.state.metrics


def _result(item: Accepted | Rejected) -> SubmissionResult:
    return SubmissionResult(**item.to_json())


@router.post(
    "/attestations",
    status_code=201,
    response_model=SubmissionResult,
    tags=["attestations"],
    summary="Submit one signed attestation",
    responses={
        200: {"description": "already stored (same UID, nothing new stored)"},
        422: {"description": "rejected with a reason code; nothing stored"},
    },
)
def submit_attestation(
    submission: Submission,
    response: Response,
    request: Request,
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey | None = Depends(optional_key),
) -> SubmissionResult:
    """Validated completely, then committed durably before this answers 201."""
    accepted = ledger.ingest(submission.model_dump(exclude_none=True))
    _metrics(request).ingested.labels("created" if accepted.created else "exists").inc()
    if not accepted.created:
        response.status_code = 200
    return _result(accepted)


@router.post(
    "/attestations/batch",
    status_code=201,
    response_model=BatchResult,
    tags=["attestations"],
    summary="Submit many signed attestations",
    responses={207: {"description": "some items rejected (see each result); the others are stored"}},
)
def submit_batch(
    request: Request,
    response: Response,
    submissions: list[Submission] = Body(..., max_length=1000),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey | None = Depends(optional_key),
) -> BatchResult:
    """Items may reference earlier items of the same batch. 201 when every item is stored."""
    max_batch = request.app.state.max_batch
    if len(submissions) > max_batch:
        raise HTTPException(413, f"a batch holds at most {max_batch} attestations")
    if not submissions:
        raise HTTPException(422, "an empty batch")
    results = ledger.ingest_many([s.model_dump(exclude_none=True) for s in submissions])
    created = sum(1 for r in results if isinstance(r, Accepted) and r.created)
    existing = sum(1 for r in results if isinstance(r, Accepted) and not r.created)
    rejected = len(results) - created - existing
    for label, count in (("created", created), ("exists", existing), ("rejected", rejected)):
        _metrics(request).ingested.labels(label).inc(count)
    if rejected:
        response.status_code = 207
    return BatchResult(results=[_result(r) for r in results], created=created, existing=existing, rejected=rejected)


@router.get("/attestations/{uid}", tags=["attestations"], summary="An attestation with its anchor and proof")
def get_attestation(
    uid: str = UID,
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("auditor", "customs")),
) -> dict[str, Any]:
    record = ledger.get_attestation(uid)
    if record is None:
        raise HTTPException(404, f"no attestation {uid}")
    return record


@router.post(
    "/attestations/{uid}/disclosures",
    tags=["customs"],
    summary="Check fields a holder disclosed later against the anchored commitment",
)
def check_late_disclosure(
    uid: str = UID,
    document: dict[str, Any] = Body(..., description="a disclosure document (`provenance disclose`)"),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs")),
) -> dict[str, Any]:
    """Which disclosed fields recompute a field hash the signed, anchored payload hash
    commits to (`valid`), and which are refused (`PAYLOAD_MISMATCH`: wrong value or salt;
    `FIELD_INVALID`: a value the kind's rule refuses). `valid` is true only when every
    field checks out and the attestation is anchored."""
    if str(document.get("uid", "")).lower() != uid.lower():
        raise HTTPException(422, f"the document discloses {document.get('uid')!r}, not {uid}")
    try:
        result = check_disclosure(ledger, document)
    except DisclosureError as exc:
        raise HTTPException(404 if isinstance(exc, UnknownAttestation) else 422, str(exc)) from exc
    return result.to_json()


@router.get("/lots/{lot}/custody", tags=["custody"], summary="The custody graph of a lot")
def lot_custody(
    lot: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9:._/#+-]{0,199}$"),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("auditor", "customs")),
) -> dict[str, Any]:
    """Attestations whose subject is `lot:<lot>` and the references between them."""
    return queries.lot_custody(ledger.sessions, lot)


VERIFICATION = TypeAdapter(Verification)


def _log_and_shape(request: Request, ledger: Ledger, key: ApiKey, action: str, result: Any) -> Response:
    """Log the verdict, count it, and answer it as the `Verification` model: validated and
    encoded here, in the endpoint's worker thread (returned as a plain dict, FastAPI would
    validate it in another hop to the thread pool, then encode it)."""
    ledger.access_log.record(key, action, result.shipment or "-", result.verdict.value)
    _metrics(request).verdicts.labels(result.verdict.value).inc()
    body = VERIFICATION.dump_json(VERIFICATION.validate_python(result.to_json()))
    return Response(body, media_type="application/json")


@router.post(
    "/shipments/{uid}/verify", response_model=Verification, tags=["customs"], summary="Verify a shipment recorded here"
)
def verify_shipment(
    request: Request,
    uid: str = UID,
    ledger: Ledger = Depends(get_ledger),
    key: ApiKey = Depends(require("customs")),
) -> Response:
    """One fail-closed verdict (VERIFIED, FLAGGED, UNVERIFIABLE) with findings and risk.
    Every call is recorded in the access log (who, when, which shipment, verdict)."""
    try:
        result = ledger.verify_shipment(uid)
    except EvidenceError as exc:
        raise HTTPException(404, str(exc)) from exc
    return _log_and_shape(request, ledger, key, "verify", result)


@router.post(
    "/bundles/verify",
    response_model=Verification,
    tags=["customs"],
    summary="Verify a proof bundle presented by an exporter",
)
def verify_presented_bundle(
    request: Request,
    bundle: dict[str, Any] = Body(...),
    ledger: Ledger = Depends(get_ledger),
    key: ApiKey = Depends(require("customs")),
) -> Response:
    result = ledger.verify_bundle(bundle)
    return _log_and_shape(request, ledger, key, "verify-bundle", result)


@router.get("/shipments/{uid}/bundle", tags=["customs", "audit"], summary="Export a shipment's proof bundle")
def shipment_bundle(
    uid: str = UID,
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs", "auditor")),
) -> dict[str, Any]:
    try:
        return ledger.export_bundle(uid)
    except EvidenceError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post(
    "/findings",
    status_code=201,
    response_model=SubmissionResult,
    tags=["customs"],
    summary="Record a signed customs finding",
)
def record_finding(
    submission: Submission,
    request: Request,
    response: Response,
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs")),
) -> SubmissionResult:
    """A CustomsFinding attestation signed by a customs officer's key; other administrations see it."""
    if submission.typedData.get("primaryType") != Kind.CUSTOMS_FINDING.type_name:
        raise Rejected(Reason.MALFORMED, "this endpoint takes CustomsFinding attestations", "typedData.primaryType")
    return submit_attestation(submission, response, request, ledger, _key)


@router.get("/participants/{address}", tags=["registry"], summary="A participant's roles and history")
def participant(
    address: str = Path(pattern=r"^0x[0-9a-fA-F]{40}$"),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs", "auditor")),
) -> dict[str, Any]:
    ledger.refresh_registry(2**62)
    history = ledger.registry.history(address)
    if not history:
        raise HTTPException(404, f"{address} is not a registered participant")
    latest = history[-1]
    return {
        "address": checksum_address(address),
        "roles": Role(latest.roles).names(),
        "granted": Role(latest.granted).names(),
        "suspended": latest.suspended,
        "retired": latest.retired,
        "validFrom": latest.valid_from,
        "validUntil": latest.valid_until,
        "history": [
            {"since": c.since, "roles": Role(c.roles).names(), "suspended": c.suspended, "retired": c.retired}
            for c in history
        ],
    }


@router.get("/batches", tags=["audit"], summary="Anchored batches, newest first")
def batches(
    limit: int = Query(50, ge=1, le=500),
    before: int | None = Query(None, ge=0),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("auditor", "customs")),
) -> dict[str, Any]:
    return {"batches": queries.recent_batches(ledger.sessions, limit, before)}


@router.get(
    "/ledger/batches/{index}",
    tags=["federation"],
    summary="The public records of an anchored batch, for mirroring nodes",
    description="What a peer needs to mirror this batch and check it against the chain, in the "
    "`provenance-public-batch/2` format: the batch's EIP-712 domain once, then for each record its "
    "signed message, signature, field hashes and the fields disclosed to the ledger (never "
    "confidential ones). The receiver trusts none of it: it rebuilds the on-chain root.",
    response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def ledger_batch(index: int = Path(ge=0, le=2**62), ledger: Ledger = Depends(get_ledger)) -> Response:
    document = ledger.public_batch(index)
    if document is None:
        raise HTTPException(404, f"this node holds no batch {index}")
    return Response(document, media_type="application/json")


@router.get(
    "/ledger/direct/{uid}",
    tags=["federation"],
    summary="An attestation recorded directly at the contract, for mirroring nodes",
    description="The same `provenance-public-batch/2` document as a batch's, with the one record "
    "of an attestation recorded directly at the ledger contract (not in a batch). The receiver "
    "trusts none of it: it derives the UID and checks it against the chain's record.",
    response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def ledger_direct(uid: str = Path(pattern=r"^0x[0-9a-fA-F]{64}$"), ledger: Ledger = Depends(get_ledger)) -> Response:
    document = ledger.public_direct(uid)
    if document is None:
        raise HTTPException(404, f"this node holds no directly recorded attestation {uid}")
    return Response(document, media_type="application/json")


@router.get("/ledger/completeness", tags=["federation"], summary="How complete this node's copy of the ledger is")
def ledger_completeness(ledger: Ledger = Depends(get_ledger)) -> dict[str, Any]:
    return ledger.completeness.watermark(ledger.chain_view.snapshot()).to_json()


@router.get("/reason-codes", tags=["reference"], summary="The stable reason codes")
def reason_codes() -> list[dict[str, str]]:
    return [{"code": r.value, "meaning": r.info.meaning, "officerAction": r.info.officer_action} for r in Reason]


@router.get("/kinds", tags=["reference"], summary="The attestation kinds and their fields (JSON Schemas)")
def kinds() -> list[dict[str, Any]]:
    """Every kind with its references and the JSON Schema of its payload fields (the same
    source as `provenance kinds` and docs/kinds.md)."""
    from ledger.kinds_doc import json_schema, refs_text

    return [
        {"kind": k.name, "typeName": k.type_name, "references": refs_text(k), "fields": json_schema(k)} for k in Kind
    ]


def _kind_check(kind: Kind) -> Callable[..., KindCheck]:
    """The route checking fields against `kind`'s rules; its body is `<Kind>Fields`."""
    from ledger.submission import field_problems

    def check(fields: dict[str, Any]) -> KindCheck:
        values = fields if isinstance(fields, dict) else {}
        problems = field_problems(kind, values)
        return KindCheck(
            kind=kind.type_name,
            valid=not problems,
            errors=[FieldProblem(field=e.field, reason=Reason.FIELD_INVALID.value, detail=str(e)) for e in problems],
        )

    def endpoint(fields: BaseModel) -> KindCheck:
        return check(fields.model_dump())

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "fields", inspect.Parameter.KEYWORD_ONLY, annotation=KIND_FIELD_MODELS[kind], default=Body()
            )
        ],
        return_annotation=KindCheck,
    )
    return endpoint


for _kind in Kind:
    router.add_api_route(
        f"/kinds/{_kind.type_name}/check",
        _kind_check(_kind),
        methods=["POST"],
        response_model=KindCheck,
        tags=["reference"],
        summary=f"Check {_kind.type_name} payload fields before signing (every problem at once)",
    )
