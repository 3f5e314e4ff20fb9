"""Fetching contract logs in block ranges that adapt to the node's limits.

Nodes refuse `eth_getLogs` over too many blocks or results ("query returned more than
10000 results", "block range too large"). The fetcher halves the range on refusal and
grows it again after successes. It only ever asks for logs of the given addresses and
drops any log whose emitting address is not one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.types import LogReceipt

MIN_RANGE = 1
MAX_RANGE = 10_000


class RangeRefused(Exception):
    """The node refused a range even at one block (its last refusal is the cause)."""


@dataclass
class AdaptiveLogFetcher:
    """Yields (from_block, to_block, logs) chunks covering [start, end]. `topics`, when
    given, is passed to the node as the eth_getLogs topic filter (event signature first).
    Raises `RangeRefused` when the node refuses even a one-block range; other errors
    (node unreachable, ...) propagate unchanged."""

    w3: Web3
    addresses: list[str]
    span: int = 2_000
    topics: list[Any] | None = None

    def fetch(self, start: int, end: int) -> Iterator[tuple[int, int, list[LogReceipt]]]:
        wanted = {a.lower() for a in self.addresses}
        cursor = start
        while cursor <= end:
            upper = min(end, cursor + self.span - 1)
            query: dict[str, Any] = {
                "fromBlock": cursor,
                "toBlock": upper,
                "address": [Web3.to_checksum_address(a) for a in wanted],
            }
            if self.topics is not None:
                query["topics"] = self.topics
            try:
                logs = self.w3.eth.get_logs(query)  # type: ignore[arg-type]
            except Exception as exc:
                if not _looks_like_range_refusal(exc):
                    raise
                if upper == cursor:
                    raise RangeRefused(f"the node refuses eth_getLogs even for block {cursor}: {exc}") from exc
                self.span = max(MIN_RANGE, min(self.span, upper - cursor + 1) // 2)
                continue
            yield cursor, upper, [log for log in logs if str(log["address"]).lower() in wanted]
            cursor = upper + 1
            self.span = min(MAX_RANGE, self.span * 2)


def _looks_like_range_refusal(exc: Exception) -> bool:
    text = str(exc).lower()
    markers = ("range", "too many", "more than", "limit", "exceed", "timeout", "timed out", "response size")
    return any(m in text for m in markers)


def decode_args(args: Any) -> dict[str, Any]:
    """Event args as JSON-safe values (bytes as 0x-hex, addresses checksummed)."""
    out: dict[str, Any] = {}
    for key, value in dict(args).items():
        if isinstance(value, bytes | bytearray):
            out[key] = "0x" + bytes(value).hex()
        elif isinstance(value, list | tuple):
            out[key] = ["0x" + bytes(v).hex() if isinstance(v, bytes | bytearray) else v for v in value]
        else:
            out[key] = value
    return out
