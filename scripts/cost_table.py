#!/usr/bin/env python3
"""The anchoring cost table of docs/deployment.md, recomputed from measured gas.

Gas per batch root comes from the gas benchmark's output (`npm run gas` writes
build/gas-report.json; key `ours.batch_4096`), or from --gas. Everything else is stated
on the command line, so the table can be recomputed for other fee levels or prices.

Batches per day: a batch is sealed when it is full (PROVENANCE_BATCH_MAX_SIZE) or when
its oldest attestation is PROVENANCE_BATCH_MAX_AGE seconds old. With attestations
arriving at an even rate r per second, a batch holds min(max_size, 1 + r * max_age)
attestations (the first one plus those arriving while it waits) — so at low volume the
age limit, not the size limit, sets the number of roots. Gas per day is batches times
gas per root; a year is 365 days. Fees: gas x (base fee + tip), in the chain's native
unit (ETH on Ethereum and most L2s), and in money at --price per unit.

An L2 also charges an L1 data fee per transaction (for the ~200 bytes of an anchoring
transaction) that this table does not model: add the rollup's per-transaction L1 fee
times the batches per day.

Usage: scripts/cost_table.py [--gas N] [--batch 4096] [--max-age 5] [--price 3000]
                             [--fees "L2 low:0.01,L2 busy:0.1,Ethereum L1:10"] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "build" / "gas-report.json"
VOLUMES = (10_000, 1_000_000, 100_000_000)
README_GAS = 51_834  # README's gas table, used when no benchmark output is present


def measured_gas() -> tuple[int, str]:
    if REPORT.exists():
        for row in json.loads(REPORT.read_text())["rows"]:
            if row.get("key") == "ours.batch_4096":
                return int(row["gas"]), f"{REPORT.relative_to(ROOT)} (ours.batch_4096)"
    return README_GAS, "README gas table"


def batches_per_day(per_day: int, max_size: int, max_age: float) -> int:
    rate = per_day / 86_400
    size = min(max_size, 1 + rate * max_age)
    return math.ceil(per_day / size)


def parse_fees(text: str) -> list[tuple[str, float]]:
    fees = []
    for part in text.split(","):
        name, gwei = part.rsplit(":", 1)
        fees.append((name.strip(), float(gwei)))
    return fees


def table(gas: int, max_size: int, max_age: float, fees: list[tuple[str, float]], price: float) -> list[list[str]]:
    rows = []
    for per_day in VOLUMES:
        batches = batches_per_day(per_day, max_size, max_age)
        gas_day = batches * gas
        row = [f"{per_day:,}", f"{batches:,}", f"{gas_day:,}", f"{gas_day * 365:,}"]
        for _, gwei in fees:
            eth_day = gas_day * gwei * 1e-9
            row.append(f"{eth_day:,.4f} / {eth_day * 365:,.2f} ({eth_day * 365 * price:,.0f})")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gas", type=int, help="gas per batch root (default: measured)")
    parser.add_argument("--batch", type=int, default=4096, help="PROVENANCE_BATCH_MAX_SIZE")
    parser.add_argument("--max-age", type=float, default=5.0, help="PROVENANCE_BATCH_MAX_AGE (seconds)")
    parser.add_argument("--price", type=float, default=3000.0, help="money per native unit (assumption)")
    parser.add_argument(
        "--fees",
        default="Besu QBFT free gas:0,L2 quiet:0.005,L2 busy:0.1,Ethereum L1:10",
        help="comma-separated name:gwei (base fee + tip per gas)",
    )
    args = parser.parse_args()
    gas, source = (args.gas, "--gas") if args.gas else measured_gas()
    fees = parse_fees(args.fees)
    print(
        f"gas per root {gas:,} (from {source}); batch at most {args.batch:,}, sealed after {args.max_age:g} s; "
        f"money at {args.price:,.0f} per native unit"
    )
    print()
    head = ["attestations/day", "roots/day", "gas/day", "gas/year"] + [
        f"{name} @ {gwei:g} gwei: per day / per year (money/year)" for name, gwei in fees
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for row in table(gas, args.batch, args.max_age, fees, args.price):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
