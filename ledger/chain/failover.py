"""Several JSON-RPC endpoints of one chain, with failover (PROVENANCE_RPC_URLS).

Requests go to one endpoint at a time (sticky: one node's view of nonces, pending
transactions and head). When it cannot be reached, times out or answers a server error,
the request is retried on the next usable endpoint; an endpoint lagging more than
`max_lag` blocks behind the best one is passed over while it lags (checked at most every
`lag_check_every` seconds).

Never mixed: an endpoint is used only after its chain id and genesis block hash were
read and found equal to the chain's identity (the manifest's chain id and the genesis
seen first). An endpoint answering for another chain is refused for good and logged;
one that is down at connect is checked when it is first needed (on failover).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from web3 import Web3
from web3.providers.base import JSONBaseProvider
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from .client import ChainUnavailable

log = logging.getLogger(__name__)

TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.HTTPError, OSError)


class ChainMismatch(ChainUnavailable):
    """An endpoint answers for a different chain (chain id or genesis hash)."""


@dataclass
class Endpoint:
    url: str
    provider: HTTPProvider
    identity: tuple[int, str] | None = None  # (chain id, genesis hash) once read
    refused: str | None = None  # why it is never used (another chain)
    down_until: float = 0.0
    lagging: bool = False
    failures: int = field(default=0)


class FailoverProvider(JSONBaseProvider):
    """A web3 provider over several endpoints of the same chain (see the module docstring)."""

    def __init__(
        self,
        urls: list[str] | tuple[str, ...],
        *,
        chain_id: int | None = None,
        timeout: float = 10.0,
        retry_after: float = 5.0,
        max_lag: int = 5,
        lag_check_every: float = 5.0,
    ) -> None:
        super().__init__()
        if not urls:
            raise ValueError("FailoverProvider needs at least one endpoint")
        self.endpoints = [
            Endpoint(u, HTTPProvider(u, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
            for u in urls
        ]
        self.expected_chain_id = chain_id
        self.identity: tuple[int, str] | None = None
        self.retry_after = retry_after
        self.max_lag = max_lag
        self.lag_check_every = lag_check_every
        self.failovers = 0
        self._current = 0
        self._lag_checked = float("-inf")
        self._lock = threading.RLock()
        for endpoint in self.endpoints:  # identities at connect; a down endpoint is checked later
            try:
                self._check_identity(endpoint)
            except TRANSPORT_ERRORS as exc:
                self._mark_down(endpoint, exc)
        usable = [i for i, e in enumerate(self.endpoints) if e.refused is None]
        if not usable:
            raise ChainMismatch("; ".join(f"{e.url}: {e.refused}" for e in self.endpoints))
        self._current = next((i for i in usable if self.endpoints[i].down_until == 0.0), usable[0])

    @property
    def endpoint_uri(self) -> str:
        """The endpoint currently answering."""
        return self.endpoints[self._current].url

    def __str__(self) -> str:
        return f"RPC failover {[e.url for e in self.endpoints]} (current {self.endpoint_uri})"

    # ------------------------------------------------------------------ identity

    def _check_identity(self, endpoint: Endpoint) -> None:
        """Read the endpoint's chain id and genesis hash; refuse it for good if they differ."""
        if endpoint.identity is not None or endpoint.refused is not None:
            return
        chain_id = int(_result(endpoint.provider.make_request(RPCEndpoint("eth_chainId"), [])), 16)
        genesis = _result(endpoint.provider.make_request(RPCEndpoint("eth_getBlockByNumber"), ["0x0", False]))
        identity = (chain_id, str(genesis["hash"]).lower())
        expected_id = self.expected_chain_id if self.identity is None else self.identity[0]
        if expected_id is not None and chain_id != expected_id:
            endpoint.refused = f"chain id {chain_id}, expected {expected_id}"
        elif self.identity is not None and identity[1] != self.identity[1]:
            endpoint.refused = f"genesis {identity[1]}, expected {self.identity[1]} (same chain id, another chain)"
        if endpoint.refused is not None:
            log.error("RPC endpoint %s refused: it answers for another chain (%s)", endpoint.url, endpoint.refused)
            return
        endpoint.identity = identity
        if self.identity is None:
            self.identity = identity

    def _mark_down(self, endpoint: Endpoint, exc: BaseException) -> None:
        endpoint.failures += 1
        endpoint.down_until = time.monotonic() + self.retry_after
        log.warning("RPC endpoint %s failed (%s); passed over for %.0fs", endpoint.url, exc, self.retry_after)

    # ------------------------------------------------------------------ requests

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            self._check_lag()
            order = self._order()
        last: BaseException | None = None
        for index in order:
            endpoint = self.endpoints[index]
            try:
                self._check_identity(endpoint)
                if endpoint.refused is not None:
                    continue
                answer = endpoint.provider.make_request(method, params)
            except TRANSPORT_ERRORS as exc:
                self._mark_down(endpoint, exc)
                last = exc
                continue
            except ChainUnavailable as exc:
                last = exc
                continue
            if index != self._current:
                log.warning("RPC failover: %s -> %s", self.endpoint_uri, endpoint.url)
                self.failovers += 1
                self._current = index
            endpoint.down_until = 0.0
            return answer
        raise ChainUnavailable(f"no usable RPC endpoint answered {method}: {last}")

    def _order(self) -> list[int]:
        """Endpoints to try: the current one first, then the others in configured order;
        lagging or recently failed ones last."""
        now = time.monotonic()
        candidates = [self._current] + [i for i in range(len(self.endpoints)) if i != self._current]
        usable = [i for i in candidates if self.endpoints[i].refused is None]

        def rank(i: int) -> int:
            e = self.endpoints[i]
            return (2 if e.down_until > now else 0) + (1 if e.lagging else 0)

        return sorted(usable, key=rank)

    def _check_lag(self) -> None:
        now = time.monotonic()
        if len(self.endpoints) < 2 or now - self._lag_checked < self.lag_check_every:
            return
        self._lag_checked = now
        heads: dict[int, int] = {}
        for i, endpoint in enumerate(self.endpoints):
            if endpoint.refused is not None or endpoint.down_until > now:
                continue
            try:
                self._check_identity(endpoint)
                if endpoint.refused is None:
                    heads[i] = int(_result(endpoint.provider.make_request(RPCEndpoint("eth_blockNumber"), [])), 16)
            except (*TRANSPORT_ERRORS, ChainUnavailable) as exc:
                self._mark_down(endpoint, exc)
        if not heads:
            return
        best = max(heads.values())
        for i, head in heads.items():
            lagging = best - head > self.max_lag
            if lagging and not self.endpoints[i].lagging:
                log.warning("RPC endpoint %s lags %d blocks behind; passed over", self.endpoints[i].url, best - head)
            self.endpoints[i].lagging = lagging

    def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            self.make_request(RPCEndpoint("eth_chainId"), [])
        except ChainUnavailable:
            return False
        return True


def _result(answer: RPCResponse) -> Any:
    if "error" in answer:
        raise ChainUnavailable(f"RPC error: {answer['error']}")
    return answer["result"]


def make_web3(urls: list[str] | tuple[str, ...], *, chain_id: int | None = None, timeout: float = 10.0) -> Web3:
    """A Web3 over one endpoint (plain HTTP) or several (failover, never mixing chains)."""
    if len(urls) == 1:
        return Web3(Web3.HTTPProvider(urls[0], request_kwargs={"timeout": timeout}))
    return Web3(FailoverProvider(urls, chain_id=chain_id, timeout=timeout))
