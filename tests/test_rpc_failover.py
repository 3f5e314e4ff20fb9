"""Several RPC endpoints (PROVENANCE_RPC_URLS): the node fails over when one is down or
lagging, and never takes an answer from a chain with another chain id or genesis.

The endpoints are real anvil nodes. Two faults are simulated by a small JSON-RPC proxy
in front of a real node, and say so: an endpoint answering HTTP 503 (down), and one
reporting its head ten blocks behind (lagging).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from web3 import Web3

from ledger.chain.anvil import AnvilNode, start_anvil
from ledger.chain.client import ChainUnavailable
from ledger.chain.failover import ChainMismatch, FailoverProvider
from ledger.core import Ledger

from .scenario import productions
from .test_anchoring import assert_exactly_once, mine

pytestmark = pytest.mark.chain


class Proxy:
    """Forwards JSON-RPC to `upstream`; `down` answers 503, `lag` under-reports the head."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.down = False
        self.lag = 0
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.requests += 1
                if proxy.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = requests.post(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=10
                ).json()
                request = json.loads(body)
                if proxy.lag and request.get("method") == "eth_blockNumber":
                    answer["result"] = hex(max(0, int(answer["result"], 16) - proxy.lag))
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(anvil: AnvilNode) -> Iterator[Proxy]:
    p = Proxy(anvil.rpc_url)
    yield p
    p.close()


@pytest.fixture
def other_chain() -> Iterator[AnvilNode]:
    """Another chain with the same chain id (31337) but its own genesis."""
    node = start_anvil(state_file=None, extra_args=("--timestamp", "1700000000"))
    yield node
    node.stop()


def test_the_node_fails_over_when_its_endpoint_goes_down_and_anchors_exactly_once(
    ledger_env: Ledger, proxy: Proxy, anvil: AnvilNode
) -> None:
    settings = ledger_env.settings.replace(rpc_urls=(proxy.url, anvil.rpc_url))
    ledger = Ledger.open(settings, manifest=ledger_env.deployment.manifest)
    try:
        provider = ledger.deployment.w3.provider
        assert isinstance(provider, FailoverProvider) and provider.endpoint_uri == proxy.url
        worker = ledger.anchoring_worker(confirmations=1, max_batch=4)
        ledger.ingest_many(productions(ledger, 4))  # type: ignore[arg-type]
        worker.drain(mine=lambda: mine(ledger.deployment.w3))
        served = proxy.requests
        assert served > 0
        proxy.down = True  # the first endpoint fails
        ledger.ingest_many(productions(ledger, 6, prefix="LATER"))  # type: ignore[arg-type]
        worker.drain(mine=lambda: mine(ledger.deployment.w3))
        assert provider.endpoint_uri == anvil.rpc_url and provider.failovers == 1
        assert_exactly_once(ledger)
        assert ledger.deployment.w3.eth.chain_id == 31337
    finally:
        ledger.close()


def test_a_lagging_endpoint_is_passed_over(anvil: AnvilNode, proxy: Proxy) -> None:
    w3 = Web3(FailoverProvider([proxy.url, anvil.rpc_url], chain_id=31337, lag_check_every=0, max_lag=3))
    mine(Web3(Web3.HTTPProvider(anvil.rpc_url)), 12)
    proxy.lag = 10  # its head is ten blocks behind the other endpoint's
    assert w3.eth.block_number == 12
    assert w3.provider.endpoint_uri == anvil.rpc_url  # type: ignore[attr-defined]
    proxy.lag = 0  # caught up: usable again (the current endpoint stays: sticky)
    assert w3.eth.block_number == 12
    assert not w3.provider.endpoints[0].lagging  # type: ignore[attr-defined]


def test_an_endpoint_of_another_chain_is_refused_at_connect(anvil: AnvilNode, other_chain: AnvilNode) -> None:
    provider = FailoverProvider([anvil.rpc_url, other_chain.rpc_url], chain_id=31337)
    assert provider.endpoints[1].refused is not None and "genesis" in provider.endpoints[1].refused
    with pytest.raises(ChainMismatch, match="chain id 31337, expected 1"):
        FailoverProvider([anvil.rpc_url], chain_id=1)


def test_failover_never_lands_on_another_chain_checked_when_first_needed(
    anvil: AnvilNode, other_chain: AnvilNode
) -> None:
    """The second endpoint is down at connect (its identity unknown); later it comes back
    answering for another chain while the first one fails: every request fails rather
    than be answered by the other chain."""
    gate = Proxy(other_chain.rpc_url)
    try:
        gate.down = True
        w3 = Web3(FailoverProvider([anvil.rpc_url, gate.url], chain_id=31337, retry_after=0))
        assert w3.eth.block_number == 0
        gate.down = False
        mine(Web3(Web3.HTTPProvider(other_chain.rpc_url)), 5)
        anvil.stop()
        with pytest.raises(ChainUnavailable, match="no usable RPC endpoint"):
            w3.eth.block_number  # noqa: B018
        assert "genesis" in (w3.provider.endpoints[1].refused or "")  # type: ignore[attr-defined]
    finally:
        gate.close()
