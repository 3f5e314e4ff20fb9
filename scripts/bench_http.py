"""Benchmark over HTTP: ingest and verification rates against `provenance serve`.

Run: .venv/bin/python scripts/bench_http.py [--seconds 10] [--clients 8] [--api-workers 2]
     .venv/bin/python scripts/bench_http.py --store build/bench/store-sqlite [--sample 3000]
The API runs as its own processes (uvicorn workers over one SQLite store); the load comes
from separate client processes on loopback. Prints rates and latency percentiles, and the
server's CPU time per request (user + system CPU of the API processes over the measured
phase, divided by the requests: what a request costs whatever else runs on the machine);
writes build/bench-http.json.

Without --store: ingest of realistic records (`benchenv.Builder`), then ONE 10-hop,
2-licence shipment verified again and again for --seconds
(after its first answer, the verdict cache answers: repeat queries, not what a lane sees).
With --store (a store kept by scripts/bench_store.py, which holds thousands of distinct
10-hop, 2-licence shipments): freshly started API processes, once every one of them has
warmed up and reported ready (the time until then is reported apart), verify --sample
distinct shipments, each asked once, split across the clients: what a customs lane sees.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import CAST, bench_chain, percentile, signed_lots, summary, wait_for_http, with_licences, write_results

from ledger.access import create_api_key
from ledger.chain.anvil import free_port
from ledger.chain.manifest import Manifest
from ledger.config import Settings
from ledger.core import Ledger

REPO = Path(__file__).resolve().parent.parent


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` and all its descendants
    (from /proc; a descendant that already ended is not counted)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                todo += [int(c) for c in task.read_text().split()]
        except OSError:
            continue  # ended meanwhile
    return total


@contextmanager
def served_api(
    home: Path,
    manifest: Manifest,
    rpc_url: str,
    workers: int,
    ready_timeout: float,
    extra: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    """`provenance serve` as its own process on a free port, for the store in `home` (and
    `extra` settings); yields its base URL and process id once it is ready, and stops it
    afterwards."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "PROVENANCE_HOME": str(home),
        "PROVENANCE_RPC_URL": rpc_url,
        "PROVENANCE_MANIFEST": str(manifest.save(home / "deployment.json")),
        "PROVENANCE_CONFIRMATIONS": "1",
        "PROVENANCE_RATE_LIMIT": "100000",  # far above what the benchmark sends: never the limit
        **(extra or {}),
    }
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", str(workers)]
    # The server's log passes through (to this process's stderr) and is read for each
    # worker's "warm-up: done" (or "warm-up failed") line.
    server = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    warmed = threading.Semaphore(0)

    def relay(stream: IO[str]) -> None:
        for line in stream:
            sys.stderr.write(line)
            if "warm-up: done" in line or "warm-up failed" in line:
                warmed.release()

    threading.Thread(target=relay, args=(server.stderr,), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        # Each worker process warms up on its own (`api.app.WarmUp`) and any of them may
        # answer /readyz: ready once every worker has logged the end of its warm-up, and
        # then 20 answers in a row are 200. (The 20 answers alone were not enough: while
        # one worker's warm-up held its interpreter, the other accepted every connection,
        # and the measured phase began with a worker still warming; seen on the shared
        # machine.)
        deadline = time.monotonic() + ready_timeout
        done = 0
        while done < workers:
            if server.poll() is not None:
                raise SystemExit(f"the API stopped (exit status {server.returncode}) before it was ready")
            if time.monotonic() > deadline:
                raise SystemExit(f"not every worker warmed up within {ready_timeout:.0f} s")
            done += warmed.acquire(timeout=0.5)
        wait_for_http(f"{base}/readyz", timeout=max(1.0, deadline - time.monotonic()))
        in_a_row = 0
        while in_a_row < 20:
            if time.monotonic() > deadline:
                raise SystemExit(f"{base}/readyz: not every worker ready within {ready_timeout:.0f} s")
            in_a_row = in_a_row + 1 if httpx.get(f"{base}/readyz", timeout=10).status_code == 200 else 0
            time.sleep(0.05)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


class KeepAlive:
    """A minimal HTTP/1.1 client over one keep-alive connection: the request is written
    whole, the status line, headers and the whole body (Content-Length) are read before
    `post` returns. The benchmark's clients share the API's cores; httpx spent about 1.2
    ms of CPU per request there (more than a tenth of the machine at these rates), this
    about a tenth of that, so the figures measure the server, not the client."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.head = "".join(f"{name}: {value}\r\n" for name, value in {"Host": f"{host}:{port}", **headers}.items())
        self.sock: socket.socket | None = None

    def _connect(self) -> tuple[socket.socket, io.BufferedReader]:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.reader = self.sock.makefile("rb")
        return self.sock, self.reader

    def post(self, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """POST `body` (JSON) to `path`: (status, the whole response body)."""
        sock, reader = self._connect()
        kind = "Content-Type: application/json\r\n" if body else ""
        sock.sendall(f"POST {path} HTTP/1.1\r\n{self.head}{kind}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status_line = reader.readline()
        if not status_line:
            raise ConnectionError(f"{path}: the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, close = None, False
        while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ValueError(f"{path}: a chunked answer (this client reads Content-Length bodies)")
        if length is None:
            raise ValueError(f"{path}: an answer without Content-Length")
        content = reader.read(length)
        if len(content) != length:
            raise ConnectionError(f"{path}: the body ended after {len(content)} of {length} bytes")
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        if self.sock is not None:
            self.reader.close()
            self.sock.close()
            self.sock = None


def load(args: tuple[str, str, dict, list, float]) -> list[float]:
    """One client process: send requests until the time is up; returns latencies (s)."""
    base, path, headers, bodies, seconds = args
    latencies: list[float] = []
    client = KeepAlive(base, headers)
    try:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            body = json.dumps(bodies[i % len(bodies)]).encode() if bodies else b""
            i += 1
            t = time.perf_counter()
            status, content = client.post(path, body)
            latencies.append(time.perf_counter() - t)
            if status >= 300:
                raise RuntimeError(f"{path}: {status} {content[:200]!r}")
            if bodies and i >= len(bodies):
                break
    finally:
        client.close()
    return latencies


def verify_each(args: tuple[str, dict, list[str]]) -> list[float]:
    """One client process: verify each shipment once; returns latencies (s), each from
    the request's first byte sent to its answer's last byte read."""
    base, headers, shipments = args
    latencies: list[float] = []
    client = KeepAlive(base, headers)
    try:
        for uid in shipments:
            t = time.perf_counter()
            status, content = client.post(f"/v1/shipments/{uid}/verify")
            latencies.append(time.perf_counter() - t)
            if status >= 300:
                raise RuntimeError(f"{uid}: {status} {content[:200]!r}")
    finally:
        client.close()
    return latencies


def distinct_over_http(args: argparse.Namespace) -> dict[str, object]:
    """Distinct shipments of a kept store, each verified once over HTTP by fresh API processes."""
    import random

    from ledger.chain.anvil import start_anvil

    store = args.store.resolve()
    meta = json.loads((store / "meta.json").read_text())
    manifest = Manifest(**json.loads(meta["manifest"]))
    sample = random.Random(7).sample(meta["shipments"], min(args.sample, len(meta["shipments"])))
    node = start_anvil(state_file=store / "anvil-state.json", state_interval=None)
    try:
        url = f"sqlite:///{store}/bench.db"
        settings = Settings(home=store, database_url=url, rpc_url=node.rpc_url, confirmations=1)
        ledger = Ledger.open(settings, manifest=manifest)
        records = ledger.counts()["attestations"]
        _key, token = create_api_key(ledger.sessions, "bench-http", {"customs"})
        ledger.close()
        load_before = round(os.getloadavg()[0], 1)
        starting = time.perf_counter()
        # Ready means warmed up (completeness measured, every licence read): minutes at
        # 1,000,000 records, timed apart from the verifications.
        database = {"PROVENANCE_DATABASE_URL": url}
        with served_api(store, manifest, node.rpc_url, args.api_workers, 3600, database) as (base, pid):
            ready_s = time.perf_counter() - starting
            headers = {"Authorization": f"Bearer {token}"}
            with multiprocessing.Pool(args.clients) as pool:
                cpu_before = tree_cpu_seconds(pid)
                started = time.perf_counter()
                parts = pool.map(verify_each, [(base, headers, sample[c :: args.clients]) for c in range(args.clients)])
                seconds = time.perf_counter() - started
                server_cpu = tree_cpu_seconds(pid) - cpu_before
    finally:
        node.stop()
    lat = [x for part in parts for x in part]
    return {
        "what": "distinct shipments, each verified once, by freshly started API processes",
        "records": records,
        "distinct_shipments": len(lat),
        "api_workers": args.api_workers,
        "clients": args.clients,
        "start_until_every_worker_ready_s": round(ready_s, 1),
        "verify_per_s": round(len(lat) / seconds, 1),
        "verify_p50_ms": round(statistics.median(lat) * 1000, 2),
        "verify_p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "server_cpu_ms_per_request": round(server_cpu / len(lat) * 1000, 2),
        "server_cpu_cores_busy": round(server_cpu / seconds, 2),
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 1),
    }


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
    parser.add_argument("--store", type=Path, help="a store kept by bench_store.py: verify its distinct shipments")
    parser.add_argument("--sample", type=int, default=3000, help="with --store: distinct shipments to verify")
    args = parser.parse_args()
    if args.store is not None:
        write_results(args.out, distinct_over_http(args))
        return 0
    results: dict[str, object] = {"api_workers": args.api_workers, "clients": args.clients}
    with bench_chain(CAST) as (node, w3, manifest), tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), rpc_url=node.rpc_url, confirmations=1, batch_max_age_seconds=0.0)
        ledger = Ledger.open(settings, manifest=manifest)
        builder = with_licences(ledger)
        builder.lot(0)  # one realistic 10-hop, 2-licence shipment (SPEC §6), asked again and again
        builder.flush()
        shipment = builder.shipments[0]
        ledger.anchoring_worker(confirmations=1, max_age=0.0).drain(
            mine=lambda: w3.provider.make_request("evm_mine", [])
        )  # type: ignore[arg-type]
        _key, token = create_api_key(ledger.sessions, "bench", {"customs"})
        print(f"signing {args.ingest * args.repeats} realistic attestations ...", file=sys.stderr)
        # Each repeat ingests lots of its own (lot numbers far apart): realistic records with
        # references, many signers, splits, findings and watch-list entries.
        subs = [signed_lots(builder, 1 + r * 100_000, args.ingest) for r in range(args.repeats)]
        ledger.close()
        with served_api(Path(home), manifest, node.rpc_url, args.api_workers, 20) as (base, _pid):
            figures: dict[str, list[float]] = {}
            path = f"/v1/shipments/{shipment}/verify"
            for r in range(args.repeats):
                # Ingest: batches of 100 attestations, split across the clients.
                batches = [subs[r][i : i + 100] for i in range(0, len(subs[r]), 100)]
                # (a client with no batch would post an empty body: fewer clients then)
                per_client = [part for c in range(args.clients) if (part := batches[c :: args.clients])]
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
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
