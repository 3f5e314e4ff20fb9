"""EIP-1559 fees for every transaction the node sends, under a ceiling from the settings.

The fee of a transaction is `min(baseFee + tip, maxFeePerGas)`: the base fee comes from
the chain (the latest block's `baseFeePerGas`), the tip (`maxPriorityFeePerGas`) and the
ceiling from the settings (PROVENANCE_PRIORITY_FEE_GWEI, PROVENANCE_MAX_FEE_GWEI).
`maxFeePerGas` is twice the base fee plus the tip (room for six full blocks of base-fee
rises), capped at the ceiling. When the base fee plus the tip is already above the
ceiling no transaction is sent at all: `FeeCeilingExceeded` carries the facts, and the
anchoring worker turns it into an alarm (readiness, log, metric) and waits.

A transaction not mined within `stuck_after` seconds is replaced under the same nonce
with both fees raised by at least `bump_percent` (nodes refuse a replacement below
+10 %), never sent again under a new nonce: at most one of them can be mined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

GWEI = 10**9


class FeeCeilingExceeded(Exception):
    """The chain asks more than the ceiling allows; nothing was sent."""

    def __init__(self, base_fee: int, tip: int, ceiling: int, needed: int) -> None:
        self.base_fee, self.tip, self.ceiling, self.needed = base_fee, tip, ceiling, needed
        super().__init__(
            f"fee ceiling exceeded: base fee {base_fee / GWEI:.3f} gwei + tip {tip / GWEI:.3f} gwei "
            f"needs {needed / GWEI:.3f} gwei per gas, ceiling PROVENANCE_MAX_FEE_GWEI is {ceiling / GWEI:.3f} gwei"
        )


@dataclass(frozen=True)
class Fees:
    """The two EIP-1559 fee fields of one transaction (wei per gas)."""

    max_fee: int
    tip: int

    def fields(self) -> dict[str, int]:
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.tip}


@dataclass(frozen=True)
class FeePolicy:
    """How the node prices its transactions (see the module docstring)."""

    max_fee_wei: int = 500 * GWEI
    priority_fee_wei: int = 1 * GWEI
    bump_percent: int = 20
    stuck_after: float = 30.0

    def __post_init__(self) -> None:
        if self.priority_fee_wei < 0:
            raise ValueError("priority fee must not be negative")
        if self.max_fee_wei < self.priority_fee_wei:
            raise ValueError("the fee ceiling must be at least the priority fee")
        if self.bump_percent < 10:
            raise ValueError("a replacement must raise its fees by at least 10 % (nodes refuse less)")
        if self.stuck_after <= 0:
            raise ValueError("stuck_after must be positive")

    @classmethod
    def from_settings(cls, settings: Any) -> FeePolicy:
        return cls(
            max_fee_wei=int(settings.max_fee_gwei * GWEI),
            priority_fee_wei=int(settings.priority_fee_gwei * GWEI),
            bump_percent=settings.fee_bump_percent,
            stuck_after=settings.tx_stuck_seconds,
        )

    def quote(self, base_fee: int, previous: Fees | None = None) -> Fees:
        """Fees for a transaction at `base_fee`; for a replacement of `previous`, both
        fields raised by at least `bump_percent`. Raises `FeeCeilingExceeded` when the
        result would not be includable (or, for a replacement, not accepted) under the
        ceiling."""
        tip = self.priority_fee_wei
        max_fee = 2 * base_fee + tip
        if previous is not None:
            tip = max(tip, _bumped(previous.tip, self.bump_percent))
            max_fee = max(max_fee, _bumped(previous.max_fee, self.bump_percent))
        needed = max(base_fee + tip, _bumped(previous.max_fee, self.bump_percent) if previous else 0)
        if needed > self.max_fee_wei:
            raise FeeCeilingExceeded(base_fee, tip, self.max_fee_wei, needed)
        return Fees(max_fee=min(max_fee, self.max_fee_wei), tip=tip)


def _bumped(value: int, percent: int) -> int:
    return value + (value * percent + 99) // 100 + (1 if value == 0 else 0)


def base_fee(w3: Web3) -> int:
    """The latest block's base fee (0 on a chain without EIP-1559)."""
    return int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)


def is_nonce_consumed(error: Exception) -> bool:
    """True when a node refused a transaction because its nonce is already used (mined)."""
    text = str(error).lower()
    return "nonce too low" in text or "nonce is too low" in text or "already been used" in text


def is_already_known(error: Exception) -> bool:
    """True when a node already holds this exact transaction."""
    text = str(error).lower()
    return "already known" in text or "already imported" in text or "known transaction" in text


def is_underpriced(error: Exception) -> bool:
    """True when a node refused a replacement whose fees were not raised enough."""
    text = str(error).lower()
    return "underpriced" in text or "replacement" in text
