"""Benchmark: in-process shipment verification latency for 1, 10 and 50 custody hops
(two licences on the production), against a real anvil chain and SQLite.

Run: .venv/bin/python scripts/bench_verify.py [--runs 200]
Prints p50/p99 per hop count (after warm-up), and writes build/bench-verify.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import bench_chain, write_results

from ledger.chain.accounts import dev_account
from ledger.config import Settings
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.roles import Role
from ledger.submission import build_submission
from ledger.verify import Verdict

RIGHTS, MAKER, EXPORTER = 2, 3, 4
CARRIERS = list(range(10, 20))


def build_shipment(ledger: Ledger, hops: int, t0: int, tag: str) -> str:
    t = t0
    d = ledger.domain

    def sign(who: int, kind: Kind, fields: dict, refs: list[str]) -> str:
        nonlocal t
        t += 1
        sub = build_submission(dev_account(who), kind, d, fields, subject=f"{tag}:{t}", refs=refs, issued_at=t)
        return ledger.ingest(sub).uid

    asset = sign(RIGHTS, Kind.IP_ASSET, {"title": "design"}, [])
    licences = [
        sign(
            RIGHTS,
            Kind.LICENCE,
            {
                "licensee": dev_account(MAKER).address,
                "goodsClasses": ["8413"],
                "territories": ["FR"],
                "validFrom": 0,
                "validUntil": 2**40,
            },
            [asset],
        )
        for _ in range(2)
    ]
    current = sign(
        MAKER, Kind.PRODUCTION, {"lot": tag, "quantity": 100, "unit": "pcs", "goodsClass": "841370"}, licences
    )
    holder = MAKER
    # hops hand-overs through carriers, the last one to the exporter
    for i in range(hops):
        to = EXPORTER if i == hops - 1 else CARRIERS[i % len(CARRIERS)]
        if to == holder:
            to = CARRIERS[(i + 1) % len(CARRIERS)]
        current = sign(
            holder,
            Kind.TRANSFER,
            {"lot": tag, "quantity": 100, "unit": "pcs", "to": dev_account(to).address},
            [current],
        )
        holder = to
    return sign(
        EXPORTER,
        Kind.SHIPMENT,
        {"quantity": 100, "unit": "pcs", "goodsClass": "841370", "destination": "FR"},
        [current],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("build/bench-verify.json"))
    args = parser.parse_args()
    results: dict[str, object] = {}
    cast = {RIGHTS: Role.RIGHTS_HOLDER, MAKER: Role.MANUFACTURER, EXPORTER: Role.EXPORTER}
    cast.update({c: Role.CARRIER for c in CARRIERS})
    with bench_chain(cast) as (node, w3, manifest), tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home),
            database_url=f"sqlite:///{home}/v.db",
            rpc_url=node.rpc_url,
            confirmations=1,
            batch_max_age_seconds=0.0,
        )
        ledger = Ledger.open(settings, manifest=manifest)
        t0 = max(int(time.time()), ledger.deployment.now())
        shipments = {hops: build_shipment(ledger, hops, t0 + 100 * i, f"H{hops}") for i, hops in enumerate((1, 10, 50))}
        worker = ledger.anchoring_worker(confirmations=1, max_age=0.0)
        worker.drain(mine=lambda: w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
        for hops, uid in shipments.items():
            first = ledger.verify_shipment(uid)
            assert first.verdict is Verdict.VERIFIED, first.to_json()
            figures: dict[str, object] = {"attestations": len(ledger.export_bundle(uid)["attestations"])}
            # cold: every verification recomputed (verdict cache emptied); warm: a repeated
            # query while chain and store are unchanged (the verdict is reused).
            for mode in ("cold", "warm"):
                times = []
                for _ in range(args.runs):
                    if mode == "cold":
                        ledger._verdicts.clear()
                    t = time.perf_counter()
                    ledger.verify_shipment(uid)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                figures[f"{mode}_p50_ms"] = round(statistics.median(times), 2)
                figures[f"{mode}_p99_ms"] = round(times[int(len(times) * 0.99) - 1], 2)
            results[f"{hops}_hops"] = figures
        ledger.close()
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
