"""Benchmark: auditor replay rate and peak memory.

Run: .venv/bin/python scripts/bench_replay.py [--n 100000]
Builds a ledger of N production attestations on a fresh anvil chain and SQLite store,
anchors them in batches of 4,096, then runs `provenance audit replay` as its own process
and reports attestations per second and that process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchenv import bench_chain, productions, summary, write_results

from ledger.config import Settings
from ledger.core import Ledger
from ledger.roles import Role

REPO = Path(__file__).resolve().parent.parent


class TreeRss:
    """Samples the summed RSS (KiB) of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import threading

        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self, pid: int) -> list[int]:
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                with contextlib.suppress(OSError):  # the process ended meanwhile
                    todo += [int(c) for c in task.read_text().split()]
        return found

    def _rss(self, pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(self._rss(p) for p in self._tree(self.pid)))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


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
        t0 = max(int(time.time()), ledger.deployment.now())
        started = time.perf_counter()
        for start in range(0, args.n, 2000):
            batch = productions(ledger.domain, min(args.n, start + 2000) - start, f"L{start}-", t0)
            ledger.ingest_many(batch)  # type: ignore[arg-type]
            print(f"\rbuilt {min(args.n, start + 2000)}/{args.n}", end="", file=sys.stderr)
        build_seconds = time.perf_counter() - started
        ledger.anchoring_worker(confirmations=1, max_age=0.0).drain(
            timeout=600, mine=lambda: w3.provider.make_request("evm_mine", [])
        )  # type: ignore[arg-type]
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
