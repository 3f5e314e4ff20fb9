"""Review 5 finding: json_shape reads raw bytes as UTF-8, json.loads does not
(api/limits.py BodySizeLimit; the same function guards mirroring). A plain failing test."""

from __future__ import annotations

from typing import Any

import anyio

from api.limits import BodySizeLimit


def test_a_utf16_body_nested_past_the_limit_never_reaches_the_parser() -> None:
    """json.loads, given bytes, detects UTF-16/32 from the first four bytes and decodes
    them; FastAPI parses request bodies with it (request.json()) before any dependency,
    authentication included, runs. json_shape counts the raw bytes: the character
    U+0122 is the bytes 22 01 in UTF-16-LE, its 0x22 reads as a closing quote, and all
    that follows as inside a string: depth 1, one value. A body nested 200,000 deep
    (800 KB, under the 8 MiB cap) passes the 64-level check; with py_ecc's recursion
    limit of 100,000 the parser overflows the C stack. Reproduced in review: one POST to
    /v1/attestations with no API key killed the serving process with SIGSEGV (rc 139).
    Here the middleware alone: it must refuse, and the app behind it never see the body."""
    depth = 200_000
    body = ('["\u0122",' + "[" * depth + "]" * depth + "]").encode("utf-16-le")
    reached: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append((await receive())["body"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/attestations",
        "headers": [(b"content-type", b"application/json")],
    }
    anyio.run(BodySizeLimit(app, 8 * 2**20), scope, receive, send)  # type: ignore[arg-type]
    assert len(reached) == 0, "a body nested 200,000 deep reached the JSON parser"
    assert sent and sent[0]["status"] in (400, 413), sent[:1]
