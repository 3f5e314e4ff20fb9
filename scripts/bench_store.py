"""Benchmark: verification as a customs lane meets it — distinct shipments, each asked for
the first time, in a store of realistic shape and growing size.

The store is built through the public core (signed, validated, ingested, anchored): many
signers (rights holders, manufacturers, carriers, exporters), two licences per
manufacturer, 10-hop custody chains through carriers, a split on every tenth lot (the
rest handed to another carrier), customs findings on some lots and watch-list entries
for unrelated goods classes. Then a FRESH process opens the store, warms up as a node
does at start-up before it reports ready (`Ledger.warm_up`: completeness measured, every
licence's productions read and checked; timed and reported apart, `--no-warm-up` skips
it) and verifies `--sample` distinct shipments once each; the verdict cache never
answers. The first verification of that process is reported apart. Every figure carries
the store size and the commit.

Run: .venv/bin/python scripts/bench_store.py --sizes 10000,100000 [--database sqlite|postgresql]
     [--update-readme] [--fresh] [--profile] [--explain] [--no-warm-up] [--code DIR --code-commit SHA]
Writes build/bench/store.json and build/bench/store-runs.json (the latest run per
database, from which --update-readme writes the README's block). The measuring process
is scripts/bench_measure.py. A SQLite store and its chain are kept in --store and reused
(and grown) by the next run; a PostgreSQL store is built in a database of its own and
dropped at the end (no pl_bench_* database is left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import (
    CAST,
    HOPS,
    Builder,
    code_commit,
    kept_chain,
    percentile,
    replace_readme_block,
    write_results,
)
from benchenv import save_meta as kept_meta

from ledger.chain.anvil import AnvilNode
from ledger.chain.manifest import Manifest
from ledger.config import Settings
from ledger.core import Ledger
from ledger.store.db import scratch_postgres_database

ROOT = Path(__file__).resolve().parent.parent


def measure(
    settings: Settings,
    manifest_json: str,
    sample: list[str],
    profile: str | None = None,
    explain: str | None = None,
    code: Path = ROOT,
    warm_up: bool = True,
) -> dict[str, Any]:
    """Verify `sample` (distinct shipments) once each in a fresh process (warmed up first,
    as a node is before it reports ready, unless `warm_up` is false)."""
    payload = {
        "home": str(settings.home),
        "db": settings.resolved_database_url,
        "rpc": settings.resolved_rpc_url,
        "manifest": manifest_json,
        "sample": sample,
        "profile": profile,
        "explain": explain,
        "warm_up": warm_up,
    }
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_measure.py"), str(code)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    times = data["times"]
    rest = times[1:]
    return {
        # The node's start-up warm-up (completeness measured, every licence's productions
        # read and checked), before the first verification: empty when not run.
        "warm_up": data.get("warm_up") or {},
        "first_in_process_ms": round(times[0], 1),
        "p50_ms": round(statistics.median(rest), 2),
        "p99_ms": round(percentile(rest, 0.99), 2),
        # Once the process has read the licences it meets (each read once, checked row by
        # row, then kept): what a long-running node sees.
        "second_half_p50_ms": round(statistics.median(rest[len(rest) // 2 :]), 2),
        "second_half_p99_ms": round(percentile(rest[len(rest) // 2 :], 0.99), 2),
        "per_s": round(1000 * len(rest) / sum(rest), 1),
        # The verifying thread's own CPU time (SQLite's work included, not PostgreSQL's
        # server): less disturbed than wall time when other work shares the machine.
        "cpu_p50_ms": round(statistics.median(data["cpu"][1:]), 2),
        "cpu_p99_ms": round(percentile(data["cpu"][1:], 0.99), 2),
        # CPU the process spent meanwhile outside the verifications (the keeper thread).
        "background_cpu_ms": round(data.get("background_cpu_ms", 0.0), 1),
        "verdicts": data["verdicts"],
        "distinct_shipments": len(sample),
        "repeat_p50_ms": round(statistics.median(data["repeats"]), 2),
    }


@contextlib.contextmanager
def store_database(kind: str, home: Path) -> Iterator[str]:
    """The store's database URL: SQLite kept in `home`, or a PostgreSQL database of the
    run's own, dropped when the block ends (`ledger.store.db.scratch_postgres_database`)."""
    if kind == "sqlite":
        yield f"sqlite:///{home}/bench.db"
        return
    with scratch_postgres_database("pl_bench_") as url:
        yield url


def save_meta(store: Path, manifest: Manifest, builder: Builder, n: int, node: AnvilNode) -> None:
    """Write what a later run needs to extend the kept store (anvil writes the chain's
    state itself when the node stops)."""
    licences = {str(k): v for k, v in builder.licences.items()}
    kept_meta(store, manifest, next_lot=n, stored=builder.stored, shipments=builder.shipments, licences=licences)


def code_label(code: Path, given: str | None) -> str:
    """The commit of the measured code, marked when the working tree differs from it."""
    if code.resolve() != ROOT:
        return given or f"the code in {code}"
    return code_commit(ROOT)


def warm_up_cell(warm_up: dict[str, Any] | None) -> str:
    """The warm-up's figures for the README table ("none": a cold process was measured)."""
    if not warm_up:
        return "none"
    return f"{warm_up['wall_s']} s / {warm_up['cpu_s']} s"


def readme_block(runs: dict[str, Any]) -> str:
    """The README's table of verification figures, from the results of one or more runs
    (one per database, or per `--run-name`), each with the commit and the machine's load
    it was measured at."""
    lines = ["SPEC §6 target, in-process: p50 ≤ 5 ms and p99 ≤ 15 ms, flat from 10,000 to 1,000,000 records.", ""]
    for name, results in sorted(runs.items()):
        lines += [
            f"**{name}**, code at commit {results['commit']}, measured {results['date']} "
            f"(load average {results['load_before']} before the run, {results.get('load_after', '?')} after"
            f"{'; the machine was shared' if results['shared'] else ''}; "
            f"store {'reused as built by an earlier run' if results['reused'] else 'built by this run'}"
            f"{', build ' + str(results['build_seconds']) + ' s' if results['build_seconds'] else ''}):",
            "",
            "| store | distinct shipments, first time each | p50 | p99 | second half of them: p50 / p99 "
            "| CPU time of the verifying thread: p50 / p99 "
            "| per second, one process | warm-up at start, before the sample (wall / CPU) "
            "| first verification of the process | repeat queries (verdict cache) p50 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for size, f in sorted(results["sizes"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {int(size):,} records | {f['distinct_shipments']} | {f['p50_ms']} ms | {f['p99_ms']} ms "
                f"| {f.get('second_half_p50_ms', '–')} / {f.get('second_half_p99_ms', '–')} ms "
                f"| {f.get('cpu_p50_ms', '–')} / {f.get('cpu_p99_ms', '–')} ms "
                f"| {f['per_s']} | {warm_up_cell(f.get('warm_up'))} "
                f"| {f['first_in_process_ms']} ms | {f['repeat_p50_ms']} ms |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="store sizes (records), built incrementally")
    parser.add_argument("--sample", type=int, default=300, help="distinct shipments verified per size")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--out", type=Path, default=Path("build/bench/store.json"))
    parser.add_argument(
        "--store",
        type=Path,
        default=Path("build/bench/store-sqlite"),
        help="SQLite: where the store and its chain are kept and reused by the next run",
    )
    parser.add_argument("--fresh", action="store_true", help="build the store again instead of reusing it")
    parser.add_argument("--update-readme", action="store_true", help="write the README's verification block")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the measuring process (build/bench/profile-<size>.pstats)"
    )
    parser.add_argument(
        "--explain", action="store_true", help="write the query plans of one verification (build/bench/plans-*.txt)"
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="measure the ledger code in this checkout (e.g. an older commit) against the same store",
    )
    parser.add_argument("--code-commit", help="the commit the --code checkout holds (reported with the figures)")
    parser.add_argument(
        "--run-name",
        help="keep this run's figures under this name beside the others in store-runs.json (default: the "
        "database's name; e.g. a run on a larger store kept in its own --store)",
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="measure a cold process: no start-up warm-up, the first verifications read what it keeps",
    )
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)  # the profile and the plans go there too
    # Stopped with SIGTERM, it still stops its anvil and drops its PostgreSQL database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = sorted(int(s) for s in args.sizes.split(","))
    commit = code_label(args.code, args.code_commit)
    load = os.getloadavg()[0]
    results: dict[str, Any] = {
        "commit": commit,
        "database": args.database,
        "hops": HOPS,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": round(load, 1),
        "shared": load > 1.5,
        "sizes": {},
    }
    # PostgreSQL: a database of its own, dropped at the end (never kept: no pl_bench_* left).
    keep = args.database == "sqlite"
    with tempfile.TemporaryDirectory() as scratch:
        store = args.store.resolve() if keep else Path(scratch)
        with kept_chain(store, CAST, fresh=args.fresh or not keep) as (node, w3, manifest, meta):
            results["reused"] = meta is not None
            if meta is not None:
                print(f"reusing the store kept in {store}: {meta['stored']:,} records", file=sys.stderr)
            database = contextlib.ExitStack()
            url = database.enter_context(store_database(args.database, store))
            try:
                settings = Settings(
                    home=store, database_url=url, rpc_url=node.rpc_url, confirmations=1, batch_max_age_seconds=0.0
                )
                ledger = Ledger.open(settings, manifest=manifest)
                builder = Builder(ledger)
                n = 0
                if meta is not None:
                    builder.stored, builder.shipments, n = meta["stored"], meta["shipments"], meta["next_lot"]
                    builder.licences = {int(k): v for k, v in meta["licences"].items()}
                build_seconds = 0.0
                for size in sizes:
                    # A store only grows, and is built in whole lots (a few records past the size
                    # asked for): one clearly larger than `size` cannot be measured at it.
                    if builder.stored > size * 1.01:
                        print(
                            f"the kept store already holds {builder.stored:,} records: {size:,} not measured "
                            "(--fresh builds it again)",
                            file=sys.stderr,
                        )
                        continue
                    started = time.perf_counter()
                    before = builder.stored
                    while builder.stored + len(builder.pending) < size:
                        builder.lot(n)
                        n += 1
                        if n % 200 == 0:
                            print(
                                f"\rbuilding: {builder.stored + len(builder.pending):,} / {size:,}",
                                end="",
                                file=sys.stderr,
                            )
                    builder.flush()
                    worker = ledger.anchoring_worker(confirmations=1, max_age=0.0, max_batch=4096)
                    worker.drain(timeout=3600, mine=lambda: w3.provider.make_request("evm_mine", []))
                    for _ in range(3):
                        w3.provider.make_request("evm_mine", [])
                    if args.database == "postgresql":
                        # What autovacuum does to a live database soon after a bulk load:
                        # planner statistics (without them it scans small-looking tables).
                        with ledger.engine.begin() as conn:
                            conn.exec_driver_sql("ANALYZE")
                    took = time.perf_counter() - started
                    build_seconds += took
                    if builder.stored > before:
                        print(
                            f"\rstore: {builder.stored:,} records ({builder.stored - before:,} signed, ingested and "
                            f"anchored in {took:.0f} s); measuring…",
                            file=sys.stderr,
                        )
                    sample = random.Random(size).sample(builder.shipments, min(args.sample, len(builder.shipments)))
                    profile = str(args.out.parent / f"profile-{builder.stored}.pstats") if args.profile else None
                    explain = (
                        str(args.out.parent / f"plans-{args.database}-{builder.stored}.txt") if args.explain else None
                    )
                    figures = measure(
                        settings, manifest.to_json(), sample, profile, explain, args.code, not args.no_warm_up
                    )
                    figures["records"] = builder.stored
                    if builder.stored > before:
                        figures["ingest_per_s_signed_validated_anchored"] = round((builder.stored - before) / took)
                    results["sizes"][str(builder.stored)] = figures
                    print(json.dumps(figures), file=sys.stderr)
                results["build_seconds"] = round(build_seconds)
                ledger.close()
                if keep:
                    save_meta(store, manifest, builder, n, node)
            finally:
                database.close()
    if code_label(args.code, args.code_commit) != commit:  # the code changed while it was measured
        results["commit"] = f"{commit}, changed during the run (figures not attributable)"
    results["load_after"] = round(os.getloadavg()[0], 1)
    results["shared"] = results["shared"] or results["load_after"] > 1.5
    runs_path = args.out.parent / "store-runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    runs[args.run_name or args.database] = results
    runs_path.write_text(json.dumps(runs, indent=2))
    write_results(args.out, results)
    if args.update_readme:
        readme = Path(__file__).resolve().parent.parent / "README.md"
        if replace_readme_block(readme, "bench-store", readme_block(runs)):
            print(f"README.md: verification block written from {runs_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
