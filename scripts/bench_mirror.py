"""Benchmark: how fast a new node catches up with the public ledger, and in what memory.

Run: .venv/bin/python scripts/bench_mirror.py [--n 1000000]

Builds a peer node holding N attestations of realistic shape (SQLite, on a fresh anvil
chain, anchored in batches of 4,096): the records `benchenv.Builder` signs for the store
benchmark — custody chains of 10 hand-overs with references, 20 signers, a split on
every tenth lot, licences, customs findings and watch-list entries — signed in parallel
processes and ingested in order through the library's validating ingest. Then it times
two catch-ups of a new node with an empty database, each until it is complete through
the last batch:
- over HTTP: the peer is served by `provenance serve` as its own process, on the same
  two cores, and the new node runs `provenance mirror --peer URL`;
- from an archive file the peer wrote with `provenance archive FILE` (timed too): the
  new node runs `provenance mirror --archive FILE`.
Every record is checked as a real mirror checks it: typed-data hash, signature,
disclosure commitments, and the on-chain root and count of its batch; its references,
watch-list classes and aggregates are stored as ingest stores them. Reports records per
second (wall clock of the mirroring process, start-up included), CPU time per record
(the mirroring process tree, and the serving peer over HTTP) and the peak RSS of the
mirroring process tree, with the store size and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import (
    CAST,
    TreeRss,
    code_commit,
    kept_chain,
    realistic_store,
    replace_readme_block,
    save_meta,
    wait_for_http,
    write_results,
)
from machine import machine

from ledger.config import Settings
from ledger.core import Ledger

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def catch_up(
    n: int, source: list[str], home: Path, name: str, env: dict[str, str], server: int | None = None
) -> dict[str, object]:
    """Time `provenance mirror` into an empty node until it is complete; its figures,
    with the CPU time of the mirroring process tree (and of the serving peer, `server`):
    what a shared machine does not change much, unlike the wall clock."""
    print(f"mirroring {n} records ({' '.join(source)}) into an empty node ...", file=sys.stderr)
    load_before = os.getloadavg()[0]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = process_cpu_seconds(server) if server is not None else 0.0
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "mirror", *source, "--json"],
        cwd=REPO,
        env={
            **env,
            "PROVENANCE_HOME": str(home / name),
            "PROVENANCE_DATABASE_URL": f"sqlite:///{home}/{name}.db",
            "PROVENANCE_CONFIRMATIONS": "1",
        },
        stdout=subprocess.PIPE,
    )
    sampler = TreeRss(proc.pid)
    output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    peak_mib = sampler.stop() / 1024
    parent_cpu = sampler.cpu.get(proc.pid, 0.0)
    workers_cpu = sum(seconds for pid, seconds in sampler.cpu.items() if pid != proc.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the mirror and its reaped workers
    cpu = children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
    server_cpu = process_cpu_seconds(server) - server_before if server is not None else 0.0
    if proc.returncode != 0:
        raise SystemExit(f"mirror exited {proc.returncode}: {output.decode()[-2000:]}")
    report = json.loads(output)
    stored = report["recordsStored"]
    if stored != n:
        raise SystemExit(f"the new node stored {stored} records, not {n}: {report}")
    return {
        "batches": report["batchesStored"],
        "completeness": report["completeness"],
        "seconds": round(seconds, 1),
        "records_per_second": round(stored / seconds),
        "peak_tree_rss_mib": round(peak_mib, 1),
        "load_average_before_and_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpu_seconds_mirror_tree": round(cpu, 1),
        "cpu_seconds_peer_server": round(server_cpu, 1),
        "cpu_microseconds_per_record": round(1e6 * (cpu + server_cpu) / n, 1),
        # As last sampled (every 50 ms) from /proc: the storing process, and the checking
        # processes (with the peak-RSS sampler's view of the tree).
        "cpu_microseconds_per_record_storing_process": round(1e6 * parent_cpu / n, 1),
        "cpu_microseconds_per_record_checking_processes": round(1e6 * workers_cpu / n, 1),
        "cpu_microseconds_per_record_peer_server": round(1e6 * server_cpu / n, 1),
    }


def peer_shape(database: Path) -> dict[str, Any]:
    """What the peer's store holds: records by kind, references, signers, file size."""
    from ledger.kinds import Kind

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM attestations GROUP BY kind").fetchall())
        refs = conn.execute("SELECT count(*) FROM attestation_refs").fetchone()[0]
        signers = conn.execute("SELECT count(DISTINCT attester) FROM attestations").fetchone()[0]
    return {
        "records_by_kind": {Kind(k).type_name: c for k, c in sorted(kinds.items())},
        "references": refs,
        "signers": signers,
        "store_mib": round(database.stat().st_size / 2**20, 1),
    }


def readme_block(result: dict[str, Any]) -> str:
    """The README's catch-up figures, from one run's results."""
    when = result["measured_at"]
    shape = result["peer_shape"]
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in shape["records_by_kind"].items())
    lines = [
        "SPEC §6 target: at least 10,000 attestations/s from an untrusted peer, checked against the chain, "
        "in bounded memory.",
        "",
        f"Code at commit {result['commit']}, measured {when} by "
        f"`scripts/bench_mirror.py --n {result['store_records']}` "
        f"on {machine()['cores']} cores, {result['jobs']} checking processes. The peer's store "
        f"(SQLite, {shape['store_mib']:,} MiB) holds {result['store_records']:,} records of realistic shape in "
        f"{result['over_http']['batches']} batches: {kinds}; {shape['references']:,} references, "
        f"{shape['signers']} signers (`benchenv.Builder`: 10-hop custody chains, a split on every tenth lot).",
        "",
        "| catching up from | records/s | seconds (start-up included) | CPU per record (all processes) | "
        "of which storing / checking / serving | peak RSS, whole process tree | load average before / after |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (
        ("the peer's API over HTTP (served on the same cores)", "over_http"),
        ("an archive file (`provenance archive`)", "from_archive_file"),
    ):
        run = result[key]
        load = run["load_average_before_and_after"]
        lines.append(
            f"| {label} | {run['records_per_second']:,} | {run['seconds']} | {run['cpu_microseconds_per_record']} µs | "
            f"{run['cpu_microseconds_per_record_storing_process']} / "
            f"{run['cpu_microseconds_per_record_checking_processes']} / "
            f"{run['cpu_microseconds_per_record_peer_server']} µs | "
            f"{run['peak_tree_rss_mib']} MiB | "
            f"{load[0]} / {load[1]} |"
        )
    lines += [
        "",
        "Storing: the mirroring process (SQLite writes); checking: its forked processes (parsing, UIDs, "
        "signatures, commitments, roots); serving: the peer's API process. Those three are sampled from "
        "/proc every 50 ms; the total is the processes' own accounting.",
        "",
        f"Writing the archive took {result['archive_write_seconds']} s ({result['archive_file_mib']} MiB). "
        f"The peer's API was ready {result['over_http'].get('peer_start_until_ready_seconds', '?')} s after it "
        "started (its start-up warm-up reads and checks its whole copy); the catch-up over HTTP was timed "
        "from then on.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="attestations on the peer")
    parser.add_argument("--out", type=Path, default=Path("build/bench-mirror.json"))
    parser.add_argument(
        "--store",
        type=Path,
        help="where the peer (SQLite store and chain) is kept and reused by the next run with the same "
        "--n (default build/bench/mirror-realistic-N)",
    )
    parser.add_argument("--fresh", action="store_true", help="build the peer again even if one is kept")
    parser.add_argument(
        "--build-only", action="store_true", help="build (or find) the kept peer and stop: no catch-up is timed"
    )
    parser.add_argument("--update-readme", action="store_true", help="write the figures into README.md's block")
    parser.add_argument(
        "--keep-archive",
        type=Path,
        help="also copy the archive file the peer wrote to this path (to profile checking on its batches alone)",
    )
    args = parser.parse_args()
    kept = (args.store or REPO / "build" / "bench" / f"mirror-realistic-{args.n}").resolve()
    with (
        kept_chain(kept, CAST, args.fresh) as (node, w3, manifest, meta),
        tempfile.TemporaryDirectory() as scratch,
    ):
        peer_home, peer_db = kept / "peer", f"sqlite:///{kept / 'peer.db'}"
        if meta is None:
            peer_settings = Settings(
                home=peer_home,
                database_url=peer_db,
                rpc_url=node.rpc_url,
                confirmations=1,
                batch_max_size=4096,
                batch_max_age_seconds=0.0,
            )
            peer = Ledger.open(peer_settings, manifest=manifest)
            build_seconds = realistic_store(peer, args.n, w3)
            peer.close()
            save_meta(kept, manifest, records=args.n, build_seconds=build_seconds)
        else:
            print(f"reusing the peer kept in {kept} ({meta['records']:,} records)", file=sys.stderr)
            build_seconds = meta["build_seconds"]
        if args.build_only:
            return 0
        home = Path(scratch)
        manifest_path = manifest.save(home / "deployment.json")
        base_env = {**os.environ, "PROVENANCE_MANIFEST": str(manifest_path), "PROVENANCE_RPC_URL": node.rpc_url}
        peer_env = {**base_env, "PROVENANCE_HOME": str(peer_home), "PROVENANCE_DATABASE_URL": peer_db}
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=peer_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            # A serving node has warmed up before it answers ready (its start-up reads and
            # checks its whole copy once); the catch-up is timed against a ready peer, as
            # a new node meets one, and the peer's start-up is reported apart.
            started = time.perf_counter()
            wait_for_http(f"{url}/readyz", timeout=1800)
            peer_ready_seconds = round(time.perf_counter() - started, 1)
            over_http = catch_up(args.n, ["--peer", url], home, "http-node", base_env, server.pid)
            over_http["peer_start_until_ready_seconds"] = peer_ready_seconds
        finally:
            server.terminate()
            server.wait(timeout=30)
        archive = home / "ledger.archive"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ledger.cli", "archive", str(archive)], cwd=REPO, env=peer_env, check=True
        )
        archive_seconds = time.perf_counter() - started
        from_archive = catch_up(args.n, ["--archive", str(archive)], home, "archive-node", base_env)
        archive_mib = archive.stat().st_size / 2**20
        if args.keep_archive is not None:
            shutil.copyfile(archive, args.keep_archive)
    shape = peer_shape(kept / "peer.db")
    result = {
        "what": "catch-up of a new node from one untrusted peer (provenance mirror): over HTTP, from an archive file",
        "commit": code_commit(REPO),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "store_records": args.n,
        "jobs": os.cpu_count(),
        "over_http": over_http,
        "from_archive_file": from_archive,
        "archive_file_mib": round(archive_mib, 1),
        "archive_write_seconds": round(archive_seconds, 1),
        "peer": f"{'reused from' if meta else 'built into'} {kept}",
        "peer_shape": shape,
        "peer_build_sign_and_ingest_seconds": round(build_seconds, 1),
    }
    write_results(args.out, result)
    for label, run in (("over HTTP", over_http), ("from an archive file", from_archive)):
        print(
            f"catch-up {label}: {run['records_per_second']:,} records/s ({args.n:,} records, "
            f"{run['cpu_microseconds_per_record']} µs CPU a record; SPEC §6 target 10,000/s)",
            file=sys.stderr,
        )
    if args.update_readme and replace_readme_block(REPO / "README.md", "bench-mirror", readme_block(result)):
        print("README.md updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
