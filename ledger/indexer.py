"""The chain indexer: follows registry and ledger events into the store.

It reads only logs emitted by the manifest's two contract addresses, in adaptive block
ranges, up to `confirmations` blocks below the head (so what it stores is not undone by
a shallow reorganisation). Each range is stored with the cursor in one transaction: a
crash resumes from the last stored range, and a log is stored at most once (unique on
transaction hash and log index), so nothing is ever double-counted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3.types import LogReceipt

from .chain.client import Deployment
from .chain.logs import AdaptiveLogFetcher, decode_args
from .store.models import ChainEventRow, IndexerCursorRow, RoleCheckpointRow

CURSOR = "chain"


@dataclass
class SyncReport:
    from_block: int
    to_block: int
    events: int


@dataclass
class ChainIndexer:
    """Call `sync()` to catch up (the node's anchoring worker does, as the one indexer)."""

    deployment: Deployment
    sessions: sessionmaker[Session]
    confirmations: int = 2
    on_progress: Callable[[int, int], None] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _decoders: dict[bytes, Any] = field(default_factory=dict, repr=False)
    _block_times: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for contract in (self.deployment.registry, self.deployment.ledger):
            for abi in contract.abi:
                if abi["type"] == "event":
                    event = contract.events[abi["name"]]()
                    self._decoders[bytes.fromhex(str(event.topic).removeprefix("0x"))] = event

    def sync(self) -> SyncReport:
        """Index every confirmed block not yet indexed; returns what was read."""
        with self._lock:
            w3 = self.deployment.w3
            # The block holding a log is its first confirmation.
            target = w3.eth.block_number - max(self.confirmations - 1, 0)
            with self.sessions() as session:
                cursor = session.get(IndexerCursorRow, CURSOR)
                start = cursor.next_block if cursor else self.deployment.manifest.deployment_block
            stored = 0
            if target >= start:
                fetcher = AdaptiveLogFetcher(w3, [self.deployment.manifest.registry, self.deployment.manifest.ledger])
                for _low, high, logs in fetcher.fetch(start, target):
                    stored += self._store_range(logs, high)
                    if self.on_progress:
                        self.on_progress(high, target)
            return SyncReport(start, target, stored)

    def _store_range(self, logs: list[LogReceipt], high: int) -> int:
        stored = 0
        with self.sessions.begin() as session:
            seen = (
                {
                    (row.tx_hash, row.log_index)
                    for row in session.execute(
                        select(ChainEventRow.tx_hash, ChainEventRow.log_index).where(
                            ChainEventRow.tx_hash.in_({"0x" + bytes(log["transactionHash"]).hex() for log in logs})
                        )
                    )
                }
                if logs
                else set()
            )
            for log in logs:
                key = ("0x" + bytes(log["transactionHash"]).hex(), int(log["logIndex"]))
                decoder = self._decoders.get(bytes(log["topics"][0])) if log["topics"] else None
                if decoder is None or key in seen:
                    continue
                decoded = decoder.process_log(log)
                args = decode_args(decoded["args"])
                row = ChainEventRow(
                    contract=str(log["address"]),
                    event=decoded["event"],
                    block_number=int(log["blockNumber"]),
                    block_hash="0x" + bytes(log["blockHash"]).hex(),
                    block_time=self._block_time(int(log["blockNumber"])),
                    tx_hash=key[0],
                    log_index=key[1],
                    args=json.dumps(args, sort_keys=True),
                )
                session.add(row)
                if decoded["event"] == "EffectiveRolesChanged":
                    session.flush()
                    session.add(
                        RoleCheckpointRow(
                            account=str(args["account"]).lower(),
                            since=int(args["since"]),
                            roles=int(args["roles"]),
                            granted=int(args["granted"]),
                            suspended=bool(args["suspended"]),
                            retired=bool(args["retired"]),
                            valid_from=int(args["validFrom"]),
                            valid_until=int(args["validUntil"]),
                            event_id=row.id,
                        )
                    )
                stored += 1
            cursor = session.get(IndexerCursorRow, CURSOR)
            if cursor is None:
                session.add(IndexerCursorRow(name=CURSOR, next_block=high + 1))
            else:
                cursor.next_block = high + 1
        return stored

    def _block_time(self, number: int) -> int:
        cached = self._block_times.get(number)
        if cached is None:
            cached = int(self.deployment.w3.eth.get_block(number)["timestamp"])
            if len(self._block_times) > 10_000:
                self._block_times.clear()
            self._block_times[number] = cached
        return cached
