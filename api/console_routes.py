"""The customs officer's console: the built page at /console (from api/console_dist,
built by scripts/install.sh from console/), its configuration, and the few endpoints it
needs beyond the public API (who am I, find a shipment, the work queue, a finding
signed with the administration's customs key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from ledger.access import ApiKey
from ledger.chain.accounts import KeyLoadError
from ledger.config import Settings
from ledger.core import Ledger
from ledger.customs_desk import (
    FINDING_CODES,
    QUEUE_VERDICTS,
    FindingRefused,
    find_shipments,
    record_finding,
    whoami,
    work_queue,
)

from .deps import get_ledger, require
from .routes import PROBLEM_RESPONSE

CONSOLE_DIST = Path(__file__).resolve().parent / "console_dist"

router = APIRouter(
    prefix="/v1/console",
    tags=["console"],
    responses={
        status: {"description": description, **PROBLEM_RESPONSE}
        for status, description in [
            (400, "unparseable body"),
            (401, "no, unknown or revoked API key"),
            (403, "the key lacks the scope"),
            (413, "body too large"),
            (422, "invalid query or finding"),
            (429, "rate limit exceeded"),
            (503, "the customs key, chain or database is unavailable"),
        ]
    },
)


class FindingRequest(BaseModel):
    shipment: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="the shipment's UID")
    finding: str = Field(description="one of the codes listed by GET /v1/console/finding-codes")
    note: str = Field("", max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")


@router.get("/me", summary="The signed-in key: its name and scopes")
def me(key: ApiKey = Depends(require("customs", "auditor"))) -> dict[str, Any]:
    return whoami(key)


@router.get("/lookup", summary="Shipments named by a shipment id, UID, lot, SSCC or GS1 Digital Link")
def lookup(
    q: str = Query(min_length=1, max_length=400),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs", "auditor")),
) -> dict[str, Any]:
    return find_shipments(ledger, q).to_json()


@router.get("/queue", summary="Recent FLAGGED and UNVERIFIABLE verifications, newest first")
def queue(
    verdict: list[str] = Query(list(QUEUE_VERDICTS)),
    limit: int = Query(50, ge=1, le=500),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs", "auditor")),
) -> dict[str, Any]:
    unknown = sorted(set(verdict) - set(QUEUE_VERDICTS))
    if unknown:
        raise HTTPException(422, f"the queue holds {', '.join(QUEUE_VERDICTS)}; not {', '.join(unknown)}")
    return {"entries": work_queue(ledger, tuple(verdict), limit)}


@router.get("/finding-codes", summary="The findings an officer may record")
def finding_codes() -> list[dict[str, str]]:
    return [{"code": code, "label": label} for code, label in FINDING_CODES.items()]


@router.post("/findings", status_code=201, summary="Record a finding signed with the administration's customs key")
def post_finding(
    body: FindingRequest,
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("customs")),
) -> dict[str, Any]:
    try:
        return record_finding(ledger, body.shipment, body.finding, body.note)
    except FindingRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    except KeyLoadError as exc:
        raise HTTPException(503, f"the customs key is not available: {exc}") from exc


def _config(request: Request) -> dict[str, Any]:
    ledger: Ledger = request.app.state.ledger
    manifest = ledger.deployment.manifest
    return {
        "rpcUrl": ledger.settings.resolved_public_rpc_url,
        "chainId": manifest.chain_id,
        "ledger": manifest.ledger,
        "registry": manifest.registry,
    }


class _ConsoleFiles:
    """The built console with a Content-Security-Policy: scripts, styles and images from
    this service only; connections to this service and to the chain's public RPC."""

    def __init__(self, rpc_origin: str) -> None:
        self.files = StaticFiles(directory=CONSOLE_DIST, html=True, check_dir=False)
        self.csp = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"media-src 'self' blob:; connect-src 'self' {rpc_origin}; object-src 'none'; base-uri 'self'; "
            "frame-ancestors 'none'"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"content-security-policy", self.csp.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        await self.files(scope, receive, with_headers)  # type: ignore[arg-type]


def register_console(app: FastAPI, settings: Settings) -> None:
    """Mount the console at /console and its endpoints under /v1/console."""
    app.include_router(router)

    @app.get("/console/config.json", include_in_schema=False)
    def console_config(request: Request) -> JSONResponse:
        return JSONResponse(_config(request), headers={"cache-control": "no-store"})

    @app.get("/console", include_in_schema=False)
    def console_root() -> Any:
        if not (CONSOLE_DIST / "index.html").is_file():
            return HTMLResponse(
                "<!doctype html><title>Console not built</title><h1>The console is not built</h1>"
                "<p>Run <code>scripts/install.sh</code>; it builds console/ into api/console_dist/.</p>",
                status_code=503,
            )
        return RedirectResponse("/console/")

    public_rpc = urlsplit(settings.resolved_public_rpc_url)
    app.mount("/console", _ConsoleFiles(f"{public_rpc.scheme}://{public_rpc.netloc}"), name="console")
