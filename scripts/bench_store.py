"""Benchmark: verification as a customs lane meets it — distinct shipments, each asked for
the first time, in a store of realistic shape and growing size.

The store is built through the public core (signed, validated, ingested, anchored): many
signers (rights holders, manufacturers, carriers, exporters), two licences per
manufacturer, 10-hop custody chains through carriers, a split on every tenth lot (the
rest handed to another carrier), customs findings on some lots and watch-list entries
for unrelated goods classes. Then a FRESH process opens the store and verifies
`--sample` distinct shipments once each; the verdict cache never answers. The first
verification of that process (which also measures the copy's completeness against the
chain) is reported apart. Every figure carries the store size and the commit.

Run: .venv/bin/python scripts/bench_store.py --sizes 10000,100000 [--database sqlite|postgresql]
Writes build/bench/store.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import bench_chain, percentile, write_results

from ledger.chain.accounts import dev_account
from ledger.config import Settings
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.roles import Role
from ledger.submission import build_submission

RIGHTS = [2, 12]
MAKERS = [3, 13, 14, 15]
EXPORTERS = [4, 16, 17]
CARRIERS = [5, 18, 19, 20, 21, 22, 23, 24, 25, 26]
CUSTOMS = 6
CAST: dict[int, Role] = (
    {r: Role.RIGHTS_HOLDER for r in RIGHTS}
    | {m: Role.MANUFACTURER for m in MAKERS}
    | {e: Role.EXPORTER for e in EXPORTERS}
    | {c: Role.CARRIER for c in CARRIERS}
    | {CUSTOMS: Role.CUSTOMS}
)
HOPS = 10
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class Builder:
    """Signs and ingests a realistic ledger, in batches of 500 submissions."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.t = max(int(time.time()), ledger.deployment.now())
        self.pending: list[dict[str, Any]] = []
        self.stored = 0
        self.shipments: list[str] = []
        self.licences: dict[int, list[str]] = {}

    def sign(self, who: int, kind: Kind, fields: dict[str, Any], subject: str, refs: list[str] = ()) -> str:  # type: ignore[assignment]
        submission = build_submission(
            dev_account(who), kind, self.ledger.domain, fields, subject=subject, refs=list(refs), issued_at=self.t
        )
        self.pending.append(submission)
        if len(self.pending) >= 500:
            self.flush()
        return str(submission["uid"])

    def flush(self) -> None:
        if self.pending:
            results = self.ledger.ingest_many(self.pending)
            refused = [r for r in results if type(r).__name__ == "Rejected"]
            if refused:
                raise RuntimeError(f"the benchmark's own submissions were refused: {refused[:3]}")
            self.stored += len(results)
            self.pending = []

    def licences_of(self, maker: int) -> list[str]:
        if maker not in self.licences:
            rights = RIGHTS[maker % len(RIGHTS)]
            asset = self.sign(rights, Kind.IP_ASSET, {"title": f"design {maker}"}, f"asset:{maker}")
            terms = {
                "licensee": dev_account(maker).address,
                "goodsClasses": ["8413"],
                "territories": ["FR", "DE", "NL"],
                "validFrom": 0,
                "validUntil": 2**40,
                "quantityCap": 10**12,
            }
            self.licences[maker] = [
                self.sign(rights, Kind.LICENCE, terms, f"licence:{maker}:{i}", [asset]) for i in range(2)
            ]
        return self.licences[maker]

    def lot(self, n: int) -> None:
        """One 10-hop, 2-licence shipment (about 13 records), with splits, findings and
        unrelated watch-list entries mixed in."""
        maker = MAKERS[n % len(MAKERS)]
        exporter = EXPORTERS[n % len(EXPORTERS)]
        lot = f"L{n}"
        current = self.sign(
            maker,
            Kind.PRODUCTION,
            {"lot": lot, "quantity": 1000, "unit": "pcs", "goodsClass": "841370"},
            f"lot:{lot}",
            self.licences_of(maker),
        )
        holder, quantity = maker, 1000
        for hop in range(HOPS):
            to = exporter if hop == HOPS - 1 else CARRIERS[(n + hop) % len(CARRIERS)]
            if to == holder:
                to = CARRIERS[(n + hop + 1) % len(CARRIERS)]
            if n % 10 == 0 and hop == 3:  # a split: part goes elsewhere
                self.sign(
                    holder,
                    Kind.TRANSFER,
                    {"lot": lot, "quantity": 100, "unit": "pcs", "to": dev_account(CARRIERS[0]).address},
                    f"lot:{lot}",
                    [current],
                )
                quantity -= 100
            current = self.sign(
                holder,
                Kind.TRANSFER,
                {"lot": lot, "quantity": quantity, "unit": "pcs", "to": dev_account(to).address},
                f"lot:{lot}",
                [current],
            )
            holder = to
        shipment = self.sign(
            exporter,
            Kind.SHIPMENT,
            {"quantity": quantity, "unit": "pcs", "goodsClass": "841370", "destination": "FR"},
            f"shipment:{lot}",
            [current],
        )
        self.shipments.append(shipment)
        if n % 7 == 0:
            self.sign(CUSTOMS, Kind.CUSTOMS_FINDING, {"finding": "INSPECTED_OK"}, f"finding:{lot}", [shipment])
        if n % 5 == 0:
            self.sign(RIGHTS[n % 2], Kind.WATCHLIST, {"goodsClasses": [f"{9000 + n % 900}"]}, f"watch:{n}")


MEASURE = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from ledger.chain.manifest import Manifest
from ledger.config import Settings
from ledger.core import Ledger
args = json.loads(sys.argv[2])
settings = Settings(home=Path(args["home"]), database_url=args["db"], rpc_url=args["rpc"], confirmations=1)
ledger = Ledger.open(settings, manifest=Manifest(**json.loads(args["manifest"])))
times, verdicts = [], {}
for uid in args["sample"]:
    t = time.perf_counter()
    result = ledger.verify_shipment(uid)
    times.append((time.perf_counter() - t) * 1000)
    verdicts[result.verdict.value] = verdicts.get(result.verdict.value, 0) + 1
print(json.dumps({"times": times, "verdicts": verdicts}))
"""


def measure(settings: Settings, manifest_json: str, sample: list[str]) -> dict[str, Any]:
    """Verify `sample` (distinct shipments) once each in a fresh process."""
    payload = {
        "home": str(settings.home),
        "db": settings.resolved_database_url,
        "rpc": settings.resolved_rpc_url,
        "manifest": manifest_json,
        "sample": sample,
    }
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(Path(__file__).resolve().parent.parent), json.dumps(payload)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    times = data["times"]
    rest = times[1:]
    return {
        "first_in_process_ms": round(times[0], 1),
        "p50_ms": round(statistics.median(rest), 2),
        "p99_ms": round(percentile(rest, 0.99), 2),
        "per_s": round(1000 * len(rest) / sum(rest), 1),
        "verdicts": data["verdicts"],
        "distinct_shipments": len(sample),
    }


def database_url(kind: str, home: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{home}/bench.db", None
    import psycopg

    name = f"pl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def drop_database(name: str | None) -> None:
    if name is None:
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="store sizes (records), built incrementally")
    parser.add_argument("--sample", type=int, default=300, help="distinct shipments verified per size")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--out", type=Path, default=Path("build/bench/store.json"))
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {"commit": commit, "database": args.database, "hops": HOPS, "sizes": {}}
    with bench_chain(CAST) as (node, w3, manifest), tempfile.TemporaryDirectory() as home:
        url, pg_name = database_url(args.database, home)
        try:
            settings = Settings(
                home=Path(home), database_url=url, rpc_url=node.rpc_url, confirmations=1, batch_max_age_seconds=0.0
            )
            ledger = Ledger.open(settings, manifest=manifest)
            builder = Builder(ledger)
            n = 0
            for size in sizes:
                started = time.perf_counter()
                before = builder.stored
                while builder.stored + len(builder.pending) < size:
                    builder.lot(n)
                    n += 1
                    if n % 200 == 0:
                        print(
                            f"\rbuilding: {builder.stored + len(builder.pending):,} / {size:,}", end="", file=sys.stderr
                        )
                builder.flush()
                rate = (builder.stored - before) / (time.perf_counter() - started)
                worker = ledger.anchoring_worker(confirmations=1, max_age=0.0, max_batch=4096)
                worker.drain(timeout=3600, mine=lambda: w3.provider.make_request("evm_mine", []))
                for _ in range(3):
                    w3.provider.make_request("evm_mine", [])
                print(f"\rstore: {builder.stored:,} records; measuring…", file=sys.stderr)
                sample = random.Random(size).sample(builder.shipments, min(args.sample, len(builder.shipments)))
                figures = measure(settings, manifest.to_json(), sample)
                figures.update({"records": builder.stored, "ingest_per_s_signed_and_validated": round(rate)})
                results["sizes"][str(builder.stored)] = figures
                print(json.dumps(figures), file=sys.stderr)
            ledger.close()
        finally:
            drop_database(pg_name)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
