"""The HTTP service. `create_app()` is the factory (uvicorn `api.app:create_app --factory`).

Configuration comes from the same environment variables as the core (see the README),
plus PROVENANCE_MAX_BODY_BYTES, PROVENANCE_MAX_BATCH, PROVENANCE_RATE_LIMIT (per
credential: requests per second, or a `limits` expression such as `100/minute`),
PROVENANCE_AUTH_FAILURE_LIMIT (failed authentications per client address, default
`20/minute`) and PROVENANCE_RATE_LIMIT_PREFIX (the Redis key prefix when
PROVENANCE_REDIS_URL is set).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.alarms import DEEP_REORG, AlarmCollector, active_alarms, raise_alarm
from ledger.config import Settings
from ledger.core import Ledger
from ledger.ingest import Rejected
from ledger.reasons import markdown_table
from ledger.store.db import STORE_UNAVAILABLE

from .connections import EndKeepAliveAfter
from .console_routes import register_console
from .epcis_routes import router as epcis_router
from .limits import ASGIApp, BodySizeLimit, Message, RateLimits, RateLimitUnavailable, Receive, Scope, Send, parse_rate
from .problems import (
    on_http,
    on_limits_unavailable,
    on_rejected,
    on_store_unavailable,
    on_unparseable,
    on_validation,
    problem,
)
from .routes import router

DESCRIPTION = f"""Signed provenance attestations for goods and IP licences, anchored on an
Ethereum-compatible chain; verification of shipments for customs; evidence for auditors.

Submissions are authenticated by their EIP-712 signatures. Customs (`customs`), auditor
(`auditor`) and admin (`admin`) endpoints need an API key: `Authorization: Bearer <key>`.
No key gives 401, a key without the scope 403. Errors are `application/problem+json`.

## Reason codes

{markdown_table()}"""


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Histogram
    ingested: Counter
    verdicts: Counter


class WarmUp:
    """The node's warm-up (`Ledger.warm_up`), run in a thread of its own when the service
    starts, so that no request pays for what the first verifications of a process would
    (completeness measured, every licence's productions read and checked). Until it has
    finished, /readyz says so and answers 503: a load balancer sends the node no traffic
    meanwhile (requests that still arrive are answered, and do that work themselves).
    Afterwards the same thread keeps the chain head and the completeness watermark fresh
    (`Ledger.keep_warm`) until `stop` is set."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.status = "starting"  # the latest progress line while it runs
        self.running = True
        self.stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="warm-up", daemon=True).start()

    def _run(self) -> None:
        log = _warm_up_log()
        started = time.perf_counter()
        try:
            self._ledger.warm_up(progress=self._said)
        except Exception as exc:  # noqa: BLE001 - verifications then do it themselves
            log.error(
                "warm-up failed after %.1f s (verifications will do it themselves): %r",
                time.perf_counter() - started,
                exc,
            )
        finally:
            self.running = False
        self._ledger.keep_warm(self.stop)

    def _said(self, line: str) -> None:
        self.status = line
        _warm_up_log().info("%s", line)


def _warm_up_log() -> logging.Logger:
    """The warm-up's logger; it writes to stderr at INFO when nothing configured logging
    (`provenance serve`), so the progress of a long warm-up is seen."""
    log = logging.getLogger("api.warmup")
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


class ObserveRequests:
    """Times every HTTP request into `provenance_http_request_seconds{route,status}` and
    answers an exception nothing else handled with a 500 problem+json (never a bare 500
    page). Pure ASGI: Starlette's `BaseHTTPMiddleware` (`@app.middleware("http")`) costs
    a few tenths of a millisecond of CPU per request (a task group and memory streams)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered = False

        async def observed_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:  # last resort: never a bare 500 page
            if answered:
                raise  # too late for another answer: the server closes the connection
            await problem(500, "Internal error", "the request failed; it was not stored")(scope, receive, observed_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, str(status)).observe(time.perf_counter() - started)


def make_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry,
        Histogram("provenance_http_request_seconds", "HTTP request latency", ["route", "status"], registry=registry),
        Counter("provenance_attestations_total", "Attestations submitted, by outcome", ["outcome"], registry=registry),
        Counter("provenance_verifications_total", "Shipment verifications, by verdict", ["verdict"], registry=registry),
    )


DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def _self_hosted_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts and styles served by the service
    itself (from the pinned fastapi-offline package), not from a CDN: the docs work on a
    closed network."""
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get(app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


def create_app(settings: Settings | None = None, ledger: Ledger | None = None) -> FastAPI:
    """The FastAPI application over one ledger (opened from `settings` if not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = ledger is None
        app.state.ledger = ledger or Ledger.open(settings)
        # The process that opens the ledger warms it; one given to the app is its owner's.
        app.state.warm_up = WarmUp(app.state.ledger) if opened else None
        if app.state.warm_up is not None:
            app.state.warm_up.start()
        alarms = AlarmCollector(app.state.ledger.sessions)  # provenance_chain_alarm{alarm=...}
        app.state.metrics.registry.register(alarms)
        yield
        if app.state.warm_up is not None:
            app.state.warm_up.stop.set()
        app.state.metrics.registry.unregister(alarms)
        if opened:
            app.state.ledger.close()

    app = FastAPI(
        title="provenance-ledger",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _self_hosted_docs(app)
    app.state.max_batch = settings.max_batch
    app.state.rate_limits = RateLimits(
        per_caller=parse_rate(settings.rate_limit),
        failed_auth=parse_rate(settings.auth_failure_limit),
        redis_url=settings.redis_url,
        prefix=settings.rate_limit_prefix,
    )
    app.state.metrics = make_metrics()
    app.include_router(router)
    app.include_router(epcis_router)
    register_console(app, settings)
    app.add_exception_handler(Rejected, on_rejected)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RecursionError, on_unparseable)  # absurdly deep JSON
    app.add_exception_handler(UnicodeDecodeError, on_unparseable)
    app.add_exception_handler(RateLimitUnavailable, on_limits_unavailable)
    for error in STORE_UNAVAILABLE:
        app.add_exception_handler(error, on_store_unavailable)

    @app.get("/healthz", tags=["system"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["system"], summary="Readiness: database and chain reachable")
    def readyz(request: Request) -> JSONResponse:
        the_ledger: Ledger = request.app.state.ledger
        checks: dict[str, str] = {}
        try:
            with the_ledger.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            the_ledger.deployment.check_chain()
            checks["chain"] = "ok"
            # Confirmed chain facts are cached forever: re-check the latest against the chain.
            changed = the_ledger.chain_view.verify_confirmed()
            if changed and checks["database"] == "ok":
                raise_alarm(
                    the_ledger.sessions,
                    DEEP_REORG,
                    "confirmed batches changed on chain (index, cached root, chain root): "
                    + ", ".join(f"({i}, {old}, {new})" for i, old, new in changed),
                )
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["chain"] = f"unavailable: {type(exc).__name__}"
        alarms: dict[str, str] = {}
        if checks["database"] == "ok":
            try:
                alarms = active_alarms(the_ledger.sessions)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                checks["alarms"] = f"unavailable: {type(exc).__name__}"
        if alarms:
            checks["alarms"] = "; ".join(f"{name}: {detail}" for name, detail in sorted(alarms.items()))
        warming: WarmUp | None = getattr(request.app.state, "warm_up", None)
        if warming is not None and warming.running:
            checks["warm-up"] = f"in progress: {warming.status}"
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"ready": ready, **checks}
        if alarms:
            body["alarm_names"] = sorted(alarms)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["system"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    )
    def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(ObserveRequests, metrics=app.state.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(EndKeepAliveAfter, limit=settings.keepalive_requests)
    return app
