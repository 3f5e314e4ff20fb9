"""Anchoring behind an RPC provider that limits `eth_getLogs` ranges.

Public providers refuse log queries over too many blocks. anvil has no such limit, so a
small real HTTP proxy in front of it simulates the provider's refusal: it forwards every
JSON-RPC call to anvil except `eth_getLogs` over more than `max_blocks` blocks, which it
answers with the error providers send ("query returned more than 10000 results", or
"block range too large" when it refuses everything)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ledger.anchoring import ANCHORED, AnchoringWorker
from ledger.chain.accounts import dev_account
from ledger.chain.client import Deployment, connect
from ledger.chain.logs import AdaptiveLogFetcher, RangeRefused
from ledger.core import Ledger
from ledger.direct import contract_logs
from ledger.store.models import BatchRow

from .scenario import actor, productions


class RangeLimitingProxy:
    """An HTTP JSON-RPC proxy to `upstream` refusing wide eth_getLogs ranges."""

    def __init__(self, upstream: str, max_blocks: int) -> None:
        self.upstream, self.max_blocks, self.refused, self.served = upstream, max_blocks, 0, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                answer = proxy.answer(json.loads(body), body)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, call: dict[str, Any], raw: bytes) -> bytes:
        if call.get("method") == "eth_getLogs":
            query = call["params"][0]
            low, high = self._block(query.get("fromBlock")), self._block(query.get("toBlock"))
            if high - low + 1 > self.max_blocks:
                self.refused += 1
                message = "block range too large" if self.max_blocks == 0 else "query returned more than 10000 results"
                error = {"code": -32005, "message": message}
                return json.dumps({"jsonrpc": "2.0", "id": call.get("id"), "error": error}).encode()
            self.served += 1
        return httpx.post(self.upstream, content=raw, headers={"content-type": "application/json"}, timeout=30).content

    def _block(self, tag: str | None) -> int:
        if tag in (None, "latest", "safe", "finalized", "pending"):
            call = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
            return int(json.loads(self.answer(call, json.dumps(call).encode()))["result"], 16)
        return 0 if tag == "earliest" else int(tag, 16)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(ledger_env: Ledger) -> Iterator[RangeLimitingProxy]:
    limited = RangeLimitingProxy(ledger_env.settings.resolved_rpc_url, max_blocks=25)
    yield limited
    limited.stop()


def grow_chain(ledger: Ledger, blocks: int) -> None:
    ledger.deployment.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_anchoring_finds_its_logs_through_a_provider_that_limits_ranges(
    ledger_env: Ledger, proxy: RangeLimitingProxy
) -> None:
    """An anchoring node whose provider answers at most 25 blocks per log query, on a
    chain 300 blocks past the deployment: it still finds the transaction that recorded
    an attestation directly (a repeated direct anchoring) and the one that anchored a
    batch (after a resend), asking in ranges the provider accepts."""
    ledger = ledger_env
    uid = ledger.ingest(productions(ledger, 1)[0]).uid
    time.sleep(1.1)
    grow_chain(ledger, 1)
    tx = ledger.anchor_direct(uid, actor("outsider"))
    ledger.ingest(productions(ledger, 1, prefix="BATCH")[0])
    worker = ledger.anchoring_worker(confirmations=1)
    for _ in range(20):
        worker.step()
        grow_chain(ledger, 1)
        with ledger.sessions() as session:
            batch = session.scalars(select(BatchRow)).first()
        if batch is not None and batch.status == ANCHORED:
            break
    assert batch is not None and batch.status == ANCHORED
    grow_chain(ledger, 300)

    behind = Deployment(connect(proxy.url), ledger.deployment.manifest)
    with pytest.raises(Exception, match="more than 10000 results"):  # the provider really refuses
        behind.ledger.events.Attested().get_logs(from_block=behind.manifest.deployment_block)
    assert ledger.anchor_direct(uid, actor("outsider")) == tx  # sanity: found on the unlimited node

    from ledger.direct import record_directly
    from ledger.eip712 import parse_typed_data
    from ledger.hashing import parse_hex

    record = ledger.get_attestation(uid)
    assert record is not None
    attestation, _ = parse_typed_data(record["typedData"])
    signature = parse_hex(record["signature"], 65, "signature")
    assert record_directly(behind, actor("outsider"), attestation, signature, parse_hex(uid, 32, "uid")) == tx

    located = AnchoringWorker(behind, ledger.sessions, dev_account(1))._locate_anchor(batch)
    assert located is not None and "0x" + bytes(located["transactionHash"]).hex() == batch.tx_hash
    assert proxy.refused >= 2 and proxy.served > 10  # narrowed after refusals, then many small queries


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_provider_refusing_even_one_block_raises_range_refused(ledger_env: Ledger) -> None:
    """A provider that refuses every log query: the fetcher narrows down to one block,
    then raises RangeRefused (the anchoring worker's loop backs off and retries)."""
    refusing = RangeLimitingProxy(ledger_env.settings.resolved_rpc_url, max_blocks=0)
    try:
        w3 = connect(refusing.url)
        fetcher = AdaptiveLogFetcher(w3, [ledger_env.deployment.manifest.ledger], span=64)
        with pytest.raises(RangeRefused, match="block range too large"):
            list(fetcher.fetch(0, w3.eth.block_number))
        assert refusing.refused >= 3  # halved down to one block, then refused there too
        with pytest.raises(RangeRefused):
            contract_logs(
                Deployment(w3, ledger_env.deployment.manifest),
                ledger_env.deployment.ledger.events.Attested(),
                b"\x01" * 32,
            )
    finally:
        refusing.stop()
