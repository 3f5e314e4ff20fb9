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

from benchenv import bench_chain, percentile, summary, write_results

from ledger.chain.accounts import dev_account
from ledger.config import Settings
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.roles import Role
from ledger.submission import build_submission
from ledger.verify import Verdict

RIGHTS, MAKER, EXPORTER = 2, 3, 4
CARRIERS = list(range(10, 20))
# Dev account index -> role: who the shipments need accredited.
CAST = {RIGHTS: Role.RIGHTS_HOLDER, MAKER: Role.MANUFACTURER, EXPORTER: Role.EXPORTER} | {
    c: Role.CARRIER for c in CARRIERS
}


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
    parser.add_argument("--runs", type=int, default=200, help="verifications per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="independent runs (median, min, max reported)")
    parser.add_argument("--out", type=Path, default=Path("build/bench-verify.json"))
    args = parser.parse_args()
    results: dict[str, object] = {}
    with bench_chain(CAST) as (node, w3, manifest), tempfile.TemporaryDirectory() as home:
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
        samples: dict[str, dict[str, list[float]]] = {}
        for hops, uid in shipments.items():
            first = ledger.verify_shipment(uid)
            assert first.verdict is Verdict.VERIFIED, first.to_json()
            results[f"{hops}_hops"] = {"attestations": len(ledger.export_bundle(uid)["attestations"])}
        # cold: every verification recomputed (verdict cache emptied); warm: a repeated
        # query while chain and store are unchanged (the verdict is reused). Each repeat
        # takes `runs` samples; its p50 and p99 are one run's figures.
        for _ in range(args.repeats):
            for hops, uid in shipments.items():
                for mode in ("cold", "warm"):
                    times = []
                    for _ in range(args.runs):
                        if mode == "cold":
                            ledger._verdicts.clear()
                        t = time.perf_counter()
                        ledger.verify_shipment(uid)
                        times.append((time.perf_counter() - t) * 1000)
                    per = samples.setdefault(f"{hops}_hops", {})
                    per.setdefault(f"{mode}_p50_ms", []).append(statistics.median(times))
                    per.setdefault(f"{mode}_p99_ms", []).append(percentile(times, 0.99))
        for key, figures in samples.items():
            results[key].update({name: summary(values, 2) for name, values in figures.items()})  # type: ignore[attr-defined]
        ledger.close()
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
