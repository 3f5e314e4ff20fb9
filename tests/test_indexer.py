"""The chain indexer: only our contracts' logs, adaptive ranges, resumable, no double counts."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete, func, select
from web3 import Web3
from web3.eth import Eth
from web3.types import FilterParams

from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send
from ledger.chain.deploy import FOREVER, deploy
from ledger.chain.logs import AdaptiveLogFetcher
from ledger.core import Ledger
from ledger.indexer import ChainIndexer
from ledger.store.models import ChainEventRow, IndexerCursorRow, RoleCheckpointRow


def event_count(ledger: Ledger) -> int:
    with ledger.sessions() as session:
        return int(session.scalar(select(func.count(ChainEventRow.id))) or 0)


def admit_some(ledger: Ledger, n: int, start: int = 10) -> None:
    registry = ledger.deployment.registry
    for i in range(n):
        account = Web3.to_checksum_address("0x" + f"{start + i:040x}")
        call_and_send(
            ledger.deployment.w3, dev_account(0), registry.functions.admit(account, b"\x01" * 32, 8, 0, FOREVER)
        )


def test_indexer_stores_each_event_once_and_resumes_from_its_checkpoint(ledger_env: Ledger) -> None:
    ledger = ledger_env
    ledger.indexer.sync()
    first = event_count(ledger)
    assert first > 0
    admit_some(ledger, 3)
    ledger.indexer.sync()
    ledger.indexer.sync()
    second = event_count(ledger)
    # Each admission emits ParticipantAdmitted + EffectiveRolesChanged.
    assert second == first + 6
    # Replaying from the start (a lost cursor) stores nothing twice.
    with ledger.sessions.begin() as session:
        session.execute(delete(IndexerCursorRow))
    fresh = ChainIndexer(ledger.deployment, ledger.sessions, confirmations=1)
    fresh.sync()
    assert event_count(ledger) == second
    with ledger.sessions() as session:
        checkpoints = session.scalar(select(func.count(RoleCheckpointRow.id)))
        roles_events = session.scalar(
            select(func.count(ChainEventRow.id)).where(ChainEventRow.event == "EffectiveRolesChanged")
        )
    assert checkpoints == roles_events


def test_indexer_reads_only_the_manifest_contracts(ledger_env: Ledger) -> None:
    ledger = ledger_env
    w3 = ledger.deployment.w3
    # An impostor deployment on the same chain emits identical events.
    impostor = deploy(w3, dev_account(0), dev_account(1).address)
    ledger.indexer.sync()
    with ledger.sessions() as session:
        contracts = set(session.scalars(select(ChainEventRow.contract)))
    assert {c.lower() for c in contracts} <= {
        ledger.deployment.manifest.registry.lower(),
        ledger.deployment.manifest.ledger.lower(),
    }
    assert impostor.registry.lower() not in {c.lower() for c in contracts}


class RangeLimitedEth:
    """A node that refuses eth_getLogs over more than `limit` blocks, as public RPCs do
    (anvil has no such limit, so this one fault is simulated)."""

    def __init__(self, eth: Eth, limit: int) -> None:
        self._eth, self.limit = eth, limit
        self.calls: list[int] = []

    # Any: stands in for Eth.get_logs with the filter the fetcher builds (block numbers only).
    def get_logs(self, params: dict[str, Any]) -> Any:
        span = params["toBlock"] - params["fromBlock"] + 1
        self.calls.append(span)
        if span > self.limit:
            raise ValueError(f"query exceeds max block range {self.limit}")
        return self._eth.get_logs(cast(FilterParams, params))


class W3Proxy:
    def __init__(self, w3: Web3, eth: RangeLimitedEth) -> None:
        self.eth = eth
        self._w3 = w3


def test_log_ranges_shrink_when_the_node_refuses_and_cover_every_block(ledger_env: Ledger) -> None:
    ledger = ledger_env
    admit_some(ledger, 4)
    w3 = ledger.deployment.w3
    head = w3.eth.block_number
    addresses = [ledger.deployment.manifest.registry, ledger.deployment.manifest.ledger]
    limited = RangeLimitedEth(w3.eth, limit=3)
    fetcher = AdaptiveLogFetcher(W3Proxy(w3, limited), addresses, span=64)  # type: ignore[arg-type]
    chunks = list(fetcher.fetch(0, head))
    covered = [b for low, high, _ in chunks for b in range(low, high + 1)]
    assert covered == list(range(head + 1)), "every block exactly once"
    assert any(span > 3 for span in limited.calls) and max(h - lo + 1 for lo, h, _ in chunks) <= 3
    all_logs = [log for _, _, logs in chunks for log in logs]
    everything = w3.eth.get_logs(
        {"fromBlock": 0, "toBlock": head, "address": [Web3.to_checksum_address(a) for a in addresses]}
    )
    assert len(all_logs) == len(everything)
