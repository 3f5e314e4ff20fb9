"""Benchmark of the ledger core: signature checks per second and ingest per second.

Run: .venv/bin/python scripts/bench_core.py [--n 5000] [--runs 3] [--postgres]
Starts its own anvil, deploys, accredits the realistic store's cast (`benchenv.CAST`), and
prints figures (median of runs, with min and max). Ingest is timed on realistic records
(`benchenv.Builder`: 10-hop custody chains with references, many signers, splits,
findings and watch-list entries), signed beforehand. It reports; it never fails the build.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import CAST, bench_chain, signed_lots, summary, with_licences, write_results
from coincurve import PrivateKey, PublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from ledger.chain.accounts import dev_account
from ledger.config import Settings
from ledger.core import Ledger
from ledger.eip712 import Attestation, Domain, typed_data
from ledger.kinds import Kind
from ledger.signatures import SignatureChecker, sign_attestation
from ledger.store.db import scratch_postgres_database


def bench_signatures(n: int, runs: int) -> dict[str, object]:
    rng = random.Random(1)
    key = dev_account(3)
    domain = Domain(31337, "0x" + "11" * 20)
    items = []
    for _ in range(n):
        a = Attestation(
            Kind.TRANSFER,
            key.address,
            rng.randbytes(32),
            (rng.randbytes(32),),
            rng.randbytes(32),
            rng.randint(1, 2**32),
            0,
        )
        items.append((a, sign_attestation(key, a, domain)))
    checker = SignatureChecker()
    fast, generic, raw = [], [], []
    pk = PrivateKey()
    raw_sigs = [(h, pk.sign_recoverable(h, hasher=None)) for h in (rng.randbytes(32) for _ in range(n))]
    for _ in range(runs):
        t = time.perf_counter()
        for a, sig in items:
            checker.check(a, domain, sig)
        fast.append(n / (time.perf_counter() - t))
        m = min(n, 1500)
        t = time.perf_counter()
        for a, sig in items[:m]:
            Account.recover_message(encode_typed_data(full_message=typed_data(a, domain)), signature=sig)
        generic.append(m / (time.perf_counter() - t))
        t = time.perf_counter()
        for h, s in raw_sigs:
            PublicKey.from_signature_and_message(s, h, hasher=None)
        raw.append(n / (time.perf_counter() - t))
    return {
        "fast_path_per_s": summary(fast),
        "eth_account_generic_per_s": summary(generic),
        "raw_secp256k1_recover_per_s": summary(raw),
        # Ratios are taken within each run (same moment, same machine load), then summarised.
        "fast_over_limit": summary([f / r for f, r in zip(fast, raw, strict=True)], 3),
        "fast_over_generic": summary([f / g for f, g in zip(fast, generic, strict=True)], 2),
    }


def bench_ingest(n: int, runs: int, sqlite_file: str | None, label: str, rpc_url: str, manifest) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Ingest rate into a fresh store each run: SQLite (`sqlite_file` in a scratch folder)
    or, with None, a PostgreSQL database of the run's own, dropped afterwards."""
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home, contextlib.ExitStack() as database:
            url = (
                f"sqlite:///{home}/{sqlite_file}"
                if sqlite_file
                else database.enter_context(scratch_postgres_database("pl_bench_"))
            )
            settings = Settings(home=Path(home), database_url=url, rpc_url=rpc_url, confirmations=1)
            ledger = Ledger.open(settings, manifest=manifest)
            # Realistic records (custody chains with references, many signers, splits,
            # findings, watch-list entries), signed beforehand: ingest alone is timed.
            subs = signed_lots(with_licences(ledger), 0, n)
            ledger.refresh_registry(int(time.time()))
            t = time.perf_counter()
            for start in range(0, n, 500):
                results = ledger.ingest_many(subs[start : start + 500])  # type: ignore[arg-type]
                assert all(type(r).__name__ == "Accepted" for r in results), results[0]
            rates.append(n / (time.perf_counter() - t))
            ledger.close()
    return {f"ingest_{label}_per_s": summary(rates)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also ingest into PostgreSQL on 127.0.0.1:5432")
    parser.add_argument("--out", type=Path, default=Path("build/bench-core.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"machine": f"{__import__('os').cpu_count()} cores", "n": args.n, "runs": args.runs}
    print("signature checks ...", file=sys.stderr)
    results["signatures"] = bench_signatures(args.n, args.runs)
    with bench_chain(CAST) as (node, _w3, manifest):
        print("ingest into SQLite ...", file=sys.stderr)
        results.update(bench_ingest(args.n, args.runs, "b.db", "sqlite", node.rpc_url, manifest))
        if args.postgres:
            print("ingest into PostgreSQL ...", file=sys.stderr)
            results.update(bench_ingest(args.n, args.runs, None, "postgresql", node.rpc_url, manifest))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
