"""Keep-alive connections ended after a number of requests, so that several API processes
share the load (pure ASGI).

Several API processes (`provenance serve --workers N`) accept from one listening socket.
An event loop that wakes for it accepts every connection waiting, so the clients that
connect together (a lane's terminals starting their shift, a benchmark's clients) land
on one process, and keep-alive keeps them there: measured with 8 keep-alive clients and 2
processes, one process served 4.6 times the verifications of the other, its core
saturated while the other idled (py-spy over the API processes, `scripts/bench_http.py
--store`). Ending each connection after `limit` requests (`Connection: close` on the
answer, as nginx's `keepalive_requests` does) costs the client a new connection that
often, and it is accepted by whichever process is free first, so the load spreads.
"""

from __future__ import annotations

from .limits import ASGIApp, Message, Receive, Scope, Send

# Connections counted at once; beyond it the counts start again (a connection that
# closed early leaves its entry behind; this bounds what such entries can hold).
_TRACKED_MAX = 65_536


class EndKeepAliveAfter:
    """Answers a connection's `limit`-th request with `Connection: close` (HTTP/1.1: a
    connection is told apart by its client address and port, which stay the same for
    its life). The answer itself is unchanged; the client opens a new connection for
    its next request, as HTTP/1.1 clients do when told to."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self.limit = limit
        self._served: dict[tuple[str, int], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client is None or scope.get("http_version") not in ("1.0", "1.1"):
            await self.app(scope, receive, send)
            return
        connection = (client[0], client[1])
        served = self._served.pop(connection, 0) + 1
        if served < self.limit:
            if len(self._served) >= _TRACKED_MAX:
                self._served.clear()
            self._served[connection] = served
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
