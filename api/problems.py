"""RFC 9457 problem details: every error the API returns is `application/problem+json`."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.ingest import Rejected
from ledger.trouble import trouble_sentence

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://provenance-ledger.example/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def on_rejected(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    status = 503 if exc.reason.value == "CHAIN_UNAVAILABLE" else 422
    extra = {"errors": exc.errors} if getattr(exc, "errors", None) else {}
    return problem(
        status, "Attestation rejected", exc.detail, reason=exc.reason.value, field=exc.field, uid=exc.uid, **extra
    )


async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body", "reason": e.get("msg")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "reason": "invalid"}
    kinds = {(e.get("type"), tuple(e.get("loc", ()))) for e in exc.errors()}
    if any(kind == "json_invalid" for kind, _loc in kinds):
        return problem(400, "Bad request", "the body is not valid JSON", reason="MALFORMED", field="body")
    if any(kind == "too_long" and loc == ("body",) for kind, loc in kinds):
        return problem(
            413, "Batch too large", "the batch holds too many attestations", reason="MALFORMED", field="body"
        )
    return problem(
        422,
        "Invalid request",
        f"{first['field']}: {first['reason']}",
        reason="MALFORMED",
        field=first["field"],
        errors=errors[:20],
    )


async def on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Payload too large",
        429: "Too many requests",
        503: "Unavailable",
    }
    response = problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database was unreachable: the transaction did not commit, so nothing was
    stored, and retrying the same request later is safe (submissions are idempotent); a
    verification has no verdict but UNVERIFIABLE meanwhile. Worded by `ledger.trouble`."""
    ledger = getattr(request.app.state, "ledger", None)
    where = ledger.settings.resolved_database_url if ledger is not None else ""
    verifying = request.url.path.endswith("/verify")
    response = problem(503, "Unavailable", trouble_sentence(exc, store=where, verifying=verifying))
    response.headers["Retry-After"] = "2"
    return response


async def on_unparseable(_request: Request, exc: Exception) -> JSONResponse:
    return problem(
        400, "Bad request", f"the body could not be parsed: {type(exc).__name__}", reason="MALFORMED", field="body"
    )


async def on_limits_unavailable(_request: Request, _exc: Exception) -> JSONResponse:
    """The shared rate-limit store (Redis) was unreachable: refuse rather than serve
    without limits; nothing was done."""
    response = problem(503, "Unavailable", "the rate-limit store is unreachable; nothing was done; retry later")
    response.headers["Retry-After"] = "2"
    return response
