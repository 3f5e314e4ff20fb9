"""A real JSON-RPC proxy in front of a chain node that can refuse chosen methods.

It stands in for faults a real node produces but not on demand (a provider that times
out or refuses `eth_getLogs` while answering everything else): tests that use it say
the fault was simulated.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class RefusingProxy:
    """Forwards JSON-RPC to `upstream`, answering an error for methods in `refuse`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refuse: set[str] = set()
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = json.loads(body)
                if isinstance(request, dict) and request.get("method") in proxy.refuse:
                    proxy.refused += 1
                    answer = json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": request.get("id"),
                            "error": {"code": -32603, "message": "internal error"},
                        }
                    ).encode()
                else:
                    headers = {"Content-Type": "application/json"}
                    answer = requests.post(proxy.upstream, data=body, headers=headers, timeout=10).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[RefusingProxy]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
