"""Benchmark over HTTP: ingest and verification rates against `provenance serve`.

Run: .venv/bin/python scripts/bench_http.py [--seconds 10] [--clients 8] [--api-workers 2]
The API runs as its own processes (uvicorn workers over one SQLite store); the load comes
from separate client processes on loopback, each bounded in time. Prints rates and
latency percentiles; writes build/bench-http.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_verify import CAST as VERIFY_CAST
from bench_verify import build_shipment
from benchenv import bench_chain, percentile, productions, summary, wait_for_http, write_results

from ledger.access import create_api_key
from ledger.chain.anvil import free_port
from ledger.config import Settings
from ledger.core import Ledger

REPO = Path(__file__).resolve().parent.parent


def load(args: tuple[str, str, dict, list, float]) -> list[float]:
    """One client process: send requests until the time is up; returns latencies (s)."""
    import httpx

    base, path, headers, bodies, seconds = args
    latencies: list[float] = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            body = bodies[i % len(bodies)] if bodies else None
            i += 1
            t = time.perf_counter()
            response = client.post(path, json=body)
            latencies.append(time.perf_counter() - t)
            if response.status_code >= 300:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            if bodies and i >= len(bodies):
                break
    return latencies


def run(base: str, path: str, headers: dict, per_client_bodies: list[list], seconds: float) -> tuple[float, list]:
    started = time.perf_counter()
    with multiprocessing.Pool(len(per_client_bodies)) as pool:
        results = pool.map(load, [(base, path, headers, bodies, seconds) for bodies in per_client_bodies])
    return time.perf_counter() - started, [x for r in results for x in r]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--ingest", type=int, default=8000, help="attestations to ingest over HTTP per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="independent runs (median, min, max reported)")
    parser.add_argument("--out", type=Path, default=Path("build/bench-http.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"api_workers": args.api_workers, "clients": args.clients}
    cast = dict(VERIFY_CAST)
    with bench_chain(cast) as (node, w3, manifest), tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), rpc_url=node.rpc_url, confirmations=1, batch_max_age_seconds=0.0)
        ledger = Ledger.open(settings, manifest=manifest)
        t0 = max(int(time.time()), ledger.deployment.now())
        shipment = build_shipment(ledger, 10, t0, "HTTP10")  # 10 custody hops, 2 licences (SPEC §6)
        ledger.anchoring_worker(confirmations=1, max_age=0.0).drain(
            mine=lambda: w3.provider.make_request("evm_mine", [])
        )  # type: ignore[arg-type]
        _key, token = create_api_key(ledger.sessions, "bench", {"customs"})
        print(f"signing {args.ingest * args.repeats} attestations ...", file=sys.stderr)
        subs = [productions(ledger.domain, args.ingest, f"H{r}-", t0) for r in range(args.repeats)]
        ledger.close()
        port = free_port()
        env = {
            **os.environ,
            "PROVENANCE_HOME": home,
            "PROVENANCE_RPC_URL": node.rpc_url,
            "PROVENANCE_MANIFEST": str(manifest.save(Path(home) / "deployment.json")),
            "PROVENANCE_CONFIRMATIONS": "1",
            "PROVENANCE_RATE_LIMIT": "1000000",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", str(args.api_workers)],
            cwd=REPO,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/readyz", timeout=20)
            figures: dict[str, list[float]] = {}
            path = f"/v1/shipments/{shipment}/verify"
            for r in range(args.repeats):
                # Ingest: batches of 100 attestations, split across the clients.
                batches = [subs[r][i : i + 100] for i in range(0, len(subs[r]), 100)]
                per_client = [batches[c :: args.clients] for c in range(args.clients)]
                seconds, lat = run(base, "/v1/attestations/batch", {}, per_client, 600)
                figures.setdefault("ingest_per_s", []).append(args.ingest / seconds)
                figures.setdefault("ingest_request_p50_ms", []).append(statistics.median(lat) * 1000)
                figures.setdefault("ingest_request_p99_ms", []).append(percentile(lat, 0.99) * 1000)
                # Verification of the 10-hop shipment, time-bounded.
                headers = {"Authorization": f"Bearer {token}"}
                seconds, lat = run(base, path, headers, [[] for _ in range(args.clients)], args.seconds)
                figures.setdefault("verify_per_s", []).append(len(lat) / seconds)
                figures.setdefault("verify_p50_ms", []).append(statistics.median(lat) * 1000)
                figures.setdefault("verify_p99_ms", []).append(percentile(lat, 0.99) * 1000)
                print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr)
            results.update({name: summary(values, 2) for name, values in figures.items()})
        finally:
            server.terminate()
            server.wait(timeout=30)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
