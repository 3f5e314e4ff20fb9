"""Request body size limit (pure ASGI, so oversized bodies are never buffered whole) and
rate limits per credential and for failed authentication (the `limits` library; Redis
when configured, so they hold across processes and nodes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

from ledger.json_shape import JsonShape, encoding_problem, json_shape

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


MAX_JSON_DEPTH = 64
# Values (separators `,` and `:` outside strings) a JSON body may hold. FastAPI parses the
# body on the event loop, and the parser holds the interpreter for its whole length: 8 MiB
# of distinct object keys took 1.2 s; 150,000 values of that kind take ~0.2 s. A batch of
# 1,000 submissions holds ~110,000.
MAX_JSON_VALUES = 150_000
# Bodies up to this size are checked inline; larger ones in a worker thread, in chunks, so
# the event loop keeps serving other requests (health checks included) meanwhile.
INLINE_CHECK_BYTES = 64 * 1024


def _measured(body: bytes) -> tuple[str | None, JsonShape]:
    """Why `body` is not UTF-8 JSON (or None), and its shape up to the limits."""
    encoding = encoding_problem(body)
    if encoding is not None:
        return encoding, JsonShape(0, 0, 0)
    return None, json_shape(body, MAX_JSON_DEPTH, MAX_JSON_VALUES)


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413 problem+json, counting bytes as
    they arrive (a lying or missing Content-Length does not get around it), JSON bodies
    nested deeper than MAX_JSON_DEPTH with 400 and holding more than MAX_JSON_VALUES
    values with 413 — before any parser sees them: absurd nesting can crash native JSON
    parsers outright, and parsing runs on the event loop, so its cost must be bounded."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        # Buffer the body (bounded by max_bytes), check it, then replay it to the app.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = dict(scope.get("headers") or []).get(b"content-type")
        # FastAPI parses a body as JSON when its type says so or when it has no type.
        if body and (content_type is None or b"json" in content_type or body.lstrip()[:1] in (b"[", b"{")):
            if len(body) <= INLINE_CHECK_BYTES:
                encoding, shape = _measured(body)
            else:  # decoding and measuring 8 MiB takes milliseconds: not on the event loop
                encoding, shape = await anyio.to_thread.run_sync(_measured, body)
            if encoding is not None:
                await self._refuse(send, 400, "Bad request", encoding, reason="MALFORMED")
                return
            depth, values = shape.depth, shape.values
            if depth > MAX_JSON_DEPTH:
                await self._refuse(
                    send,
                    400,
                    "Bad request",
                    f"JSON nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}",
                    reason="MALFORMED",
                )
                return
            if values > MAX_JSON_VALUES:
                await self._refuse(send, detail=f"JSON bodies are limited to {MAX_JSON_VALUES} values")
                return
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay_receive, send)

    async def _refuse(
        self,
        send: Send,
        status: int = 413,
        title: str = "Payload too large",
        detail: str | None = None,
        **extra: str,
    ) -> None:
        body = json.dumps(
            {
                "type": f"https://provenance-ledger.example/problems/{title.lower().replace(' ', '-')}",
                "title": title,
                "status": status,
                "detail": detail or f"request bodies are limited to {self.max_bytes} bytes",
                **extra,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SweptMemoryStorage(MemoryStorage):
    """`limits`' in-process storage, its expired counters swept at most once a second by
    the request that finds a sweep due. The library's own sweeper is a new timer thread
    (10 ms) started by any request that finds the last one ended: under steady traffic,
    up to a hundred thread starts a second, each costing more CPU than the count. Expired
    counters are never counted either way (`get` drops them); the sweep bounds memory."""

    SWEEP_EVERY = 1.0  # seconds

    def __init__(self) -> None:
        super().__init__()
        self._sweeping = threading.Lock()
        self._next_sweep = 0.0

    # The library calls its private `__schedule_expiry` after every count (limits 5.8.0).
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + self.SWEEP_EVERY
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]  # the private sweep
        finally:
            self._sweeping.release()


class RateLimitUnavailable(Exception):
    """The shared rate-limit store (Redis) could not be reached."""


def parse_rate(raw: str) -> RateLimitItem:
    """`500` (requests per second: a whole number) or a `limits` expression such as
    `20/minute`."""
    raw = raw.strip()
    try:
        return parse(f"{int(raw)}/second" if raw.isdigit() else raw)
    except ValueError as exc:
        raise ValueError(f"not a rate limit: {raw!r} (e.g. 500, 100/second, 20/minute)") from exc


class RateLimits:
    """Request limits per caller, and failed authentication per client address, kept by
    the `limits` library with a sliding window counter (two fixed-window counters per
    caller, weighted; atomic in Redis): in Redis when `redis_url` is given (shared by
    every process and node using the same URL and prefix), else in this process's memory
    (`SweptMemoryStorage`).
    Counters expire two windows after their last use, in Redis and in memory alike, so
    memory holds only the callers of the last two windows. (The library's in-memory
    moving window keeps an empty list per caller forever, hence not that strategy.)"""

    def __init__(
        self, per_caller: RateLimitItem, failed_auth: RateLimitItem, redis_url: str | None, prefix: str
    ) -> None:
        self.per_caller, self.failed_auth = per_caller, failed_auth
        self.storage: Storage = (
            RedisStorage(redis_url, key_prefix=prefix, socket_timeout=2, socket_connect_timeout=2)
            if redis_url
            else SweptMemoryStorage()
        )
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)

    def allow(self, who: str) -> tuple[bool, float]:
        """Count one request by `who`: (allowed, seconds until the window frees a slot)."""
        return self._hit(self.per_caller, "caller", who)

    def auth_blocked(self, address: str) -> tuple[bool, float]:
        """Has `address` used up its failed authentications? (blocked, seconds to wait)"""
        try:
            if self._limiter.test(self.failed_auth, "auth-failed", address):
                return False, 0.0
            return True, self._wait(self.failed_auth, "auth-failed", address)
        except Exception as exc:
            raise RateLimitUnavailable(str(exc)) from exc

    def auth_failed(self, address: str) -> tuple[bool, float]:
        """Count one failed authentication from `address`: (still allowed, seconds to wait)."""
        return self._hit(self.failed_auth, "auth-failed", address)

    def _hit(self, item: RateLimitItem, *ids: str) -> tuple[bool, float]:
        try:
            if self._limiter.hit(item, *ids):
                return True, 0.0
            return False, self._wait(item, *ids)
        except Exception as exc:
            raise RateLimitUnavailable(str(exc)) from exc

    def _wait(self, item: RateLimitItem, *ids: str) -> float:
        reset = self._limiter.get_window_stats(item, *ids).reset_time
        return max(0.0, reset - time.time())
