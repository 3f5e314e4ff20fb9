"""Benchmark: auditor replay rate and peak memory.

Run: .venv/bin/python scripts/bench_replay.py [--n 100000]
Builds a ledger of N production attestations on a fresh anvil chain and SQLite store,
anchors them in batches of 4,096, then runs `provenance audit replay` as its own process
and reports attestations per second and that process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchenv import TreeRss, bench_chain, productions_store, summary, write_results

from ledger.config import Settings
from ledger.core import Ledger
from ledger.roles import Role

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="replays of the same ledger (median, min, max)")
    parser.add_argument("--out", type=Path, default=Path("build/bench-replay.json"))
    args = parser.parse_args()
    with bench_chain({3: Role.MANUFACTURER}) as (node, w3, manifest), tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home),
            database_url=f"sqlite:///{home}/r.db",
            rpc_url=node.rpc_url,
            confirmations=1,
            batch_max_size=4096,
            batch_max_age_seconds=0.0,
        )
        ledger = Ledger.open(settings, manifest=manifest)
        build_seconds = productions_store(ledger, args.n, w3)
        manifest_path = manifest.save(Path(home) / "deployment.json")
        env = {
            **os.environ,
            "PROVENANCE_HOME": home,
            "PROVENANCE_MANIFEST": str(manifest_path),
            "PROVENANCE_DATABASE_URL": settings.resolved_database_url,
            "PROVENANCE_RPC_URL": node.rpc_url,
        }
        rates, walls, peaks, tree_peaks = [], [], [], []
        for r in range(args.repeats):
            report_path = Path(home) / f"report-{r}.json"
            print(f"\nreplay {r + 1}/{args.repeats} ...", file=sys.stderr)
            t = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "ledger.cli", "audit", "replay", "--json-out", str(report_path)],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            sampler = TreeRss(proc.pid)
            _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
            tree_peaks.append(sampler.stop() / 1024)
            seconds = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)
            report = json.loads(report_path.read_text())
            assert proc.returncode == 0 and report["summary"]["discrepancies"] == 0, report["summary"]
            rates.append(report["summary"]["ratePerSecond"])
            walls.append(args.n / seconds)
            peaks.append(usage.ru_maxrss / 1024)
        ledger.close()
    result = {
        "attestations": args.n,
        "batches": report["summary"]["batches"],
        "discrepancies": report["summary"]["discrepancies"],
        "replay_rate_per_s": summary(rates),
        "replay_rate_per_s_wall_including_startup": summary(walls),
        "peak_rss_mib": summary(peaks),
        # The replay checks records in forked workers: their RSS summed with the parent's,
        # sampled every 50 ms (shared pages counted in each process: an over-estimate).
        "peak_tree_rss_mib": summary(tree_peaks),
        "build_ingest_seconds": round(build_seconds, 1),
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
