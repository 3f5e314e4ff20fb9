"""Request body size limit (pure ASGI, so oversized bodies are never buffered whole) and
per-credential rate limiting (token buckets)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays/objects in `body`, without parsing it (strings removed by
    a C regex, then only bracket characters are visited)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub(b"", body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413 problem+json, counting bytes as
    they arrive (a lying or missing Content-Length does not get around it), and JSON bodies
    nested deeper than MAX_JSON_DEPTH with 400 — before any parser sees them: absurd
    nesting can crash native JSON parsers outright, which no exception handler catches."""

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
        if body[:1] in (b"[", b"{") or b"json" in dict(scope.get("headers") or []).get(b"content-type", b""):
            depth = json_depth(body)
            if depth > MAX_JSON_DEPTH:
                await self._refuse(
                    send,
                    400,
                    "Bad request",
                    f"JSON nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}",
                    reason="MALFORMED",
                )
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


class RateLimiter:
    """Token buckets per caller identity: `rate` requests per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, who: str) -> tuple[bool, float]:
        """(allowed, seconds until the next token)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                return True, 0.0
            self._buckets[who] = (tokens, now)
            return False, (1 - tokens) / self.rate
