"""Request dependencies: the ledger, the caller's credential and its scope, rate limits."""

from __future__ import annotations

import math
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request

from ledger.access import ApiKey, authenticate
from ledger.core import Ledger


async def get_ledger(request: Request) -> Ledger:
    """The app's ledger. A coroutine: FastAPI runs a plain function dependency in its
    thread pool, a hop that costs more CPU than this lookup."""
    ledger: Ledger = request.app.state.ledger
    return ledger


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def _too_many(detail: str, wait: float) -> HTTPException:
    return HTTPException(429, f"{detail}; retry in {wait:.2f}s", headers={"Retry-After": f"{max(1, math.ceil(wait))}"})


def _limit(request: Request, who: str) -> None:
    allowed, wait = request.app.state.rate_limits.allow(who)
    if not allowed:
        raise _too_many(f"rate limit exceeded for {who}", wait)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _authenticate(request: Request, ledger: Ledger, token: str) -> ApiKey:
    """The key for `token`, or 401; an address that failed authentication too often
    (PROVENANCE_AUTH_FAILURE_LIMIT) gets 429 for every key until its window moves on."""
    limits = request.app.state.rate_limits
    address = _address(request)
    blocked, wait = limits.auth_blocked(address)
    if blocked:
        raise _too_many(f"too many failed authentications from {address}", wait)
    key = authenticate(ledger.sessions, token)
    if key is None:
        allowed, wait = limits.auth_failed(address)
        if not allowed:
            raise _too_many(f"too many failed authentications from {address}", wait)
        raise HTTPException(401, "unknown, malformed or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return key


def optional_key(request: Request, ledger: Ledger = Depends(get_ledger)) -> ApiKey | None:
    """Submissions are authenticated by their signatures; a key is optional (and, when
    given, must be valid). Rate-limited per key, else per client address."""
    token = _token(request)
    if token is None:
        _limit(request, f"ip:{_address(request)}")
        return None
    key = _authenticate(request, ledger, token)
    _limit(request, f"key:{key.id}")
    return key


def require(*scopes: str) -> Callable[..., ApiKey]:
    """A dependency admitting keys holding any of `scopes` (admin holds all)."""

    def dependency(request: Request, ledger: Ledger = Depends(get_ledger)) -> ApiKey:
        token = _token(request)
        if token is None:
            raise HTTPException(
                401, "an API key is required (Authorization: Bearer <key>)", headers={"WWW-Authenticate": "Bearer"}
            )
        key = _authenticate(request, ledger, token)
        if not any(key.allows(s) for s in scopes):
            raise HTTPException(403, f"this key lacks the scope: needs one of {', '.join(scopes)}")
        _limit(request, f"key:{key.id}")
        return key

    return dependency
