"""The measuring half of scripts/bench_store.py, run as a fresh process: opens the store
with the ledger code in argv[1] and verifies the distinct shipments given on stdin once each,
then asks the first 100 again (repeat queries, answered by the verdict cache). With
"warm_up", first does what a node does at start-up before it reports ready
(`Ledger.warm_up`: completeness measured, every licence's productions read), timed apart,
and keeps its views fresh in the background as a node does (`Ledger.keep_warm`). With
"profile", cProfiles all but the first verification; with "explain", writes the query
plan of every statement one more (uncached) verification issues. Prints JSON."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, sys.argv[1])

from ledger.chain.manifest import Manifest
from ledger.config import Settings
from ledger.core import Ledger


def main() -> None:
    args = json.loads(sys.stdin.read())  # on stdin: thousands of shipment ids exceed an argument's size limit
    settings = Settings(home=Path(args["home"]), database_url=args["db"], rpc_url=args["rpc"], confirmations=1)
    ledger = Ledger.open(settings, manifest=Manifest(**json.loads(args["manifest"])))
    warm_up: dict[str, Any] = {}
    if args.get("warm_up") and hasattr(ledger, "warm_up"):  # older code (--code) has none
        # What a node does at start-up before it reports ready (api.app): timed apart,
        # never inside a verification's figure.
        t, c = time.perf_counter(), time.process_time()
        steps = ledger.warm_up()
        warm_up = {
            "wall_s": round(time.perf_counter() - t, 2),
            "cpu_s": round(time.process_time() - c, 2),
            "steps_s": {k: round(v, 2) for k, v in steps.items()},
        }
    stop = threading.Event()
    if warm_up:  # and then, as the node does, its views kept fresh in the background
        threading.Thread(target=ledger.keep_warm, args=(stop,), daemon=True).start()
    times: list[float] = []
    # The verifying thread's CPU time per verification (the machine is shared). A thread's,
    # not the process's: the background keeper (`keep_warm`) is not any one request's
    # work; its CPU is reported apart (`background_cpu_ms`).
    cpu: list[float] = []
    verdicts: dict[str, int] = {}
    profiler = None
    if args.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    process_cpu = time.process_time()
    for i, uid in enumerate(args["sample"]):
        if profiler is not None and i == 1:
            profiler.enable()  # the first verification (completeness measured) is reported apart
        t, c = time.perf_counter(), time.thread_time()
        result = ledger.verify_shipment(uid)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
        verdicts[result.verdict.value] = verdicts.get(result.verdict.value, 0) + 1
    background = (time.process_time() - process_cpu) * 1000 - sum(cpu)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    repeats = []
    for uid in args["sample"][:100]:
        t = time.perf_counter()
        ledger.verify_shipment(uid)
        repeats.append((time.perf_counter() - t) * 1000)
    stop.set()
    if args.get("explain"):
        explain(ledger, args["sample"][0], args["explain"])
    figures = {"times": times, "cpu": cpu, "verdicts": verdicts, "repeats": repeats}
    print(json.dumps({**figures, "warm_up": warm_up, "background_cpu_ms": background}))


def explain(ledger: Ledger, shipment: str, path: str) -> None:
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        statements.append((statement, params))

    event.listen(ledger.engine, "before_cursor_execute", listener)
    ledger._verdicts.clear()
    ledger.verify_shipment(shipment)
    event.remove(ledger.engine, "before_cursor_execute", listener)
    sqlite = ledger.engine.dialect.name == "sqlite"
    with ledger.engine.connect() as conn, open(path, "w") as out:
        for statement, params in statements:
            out.write("=" * 60 + "\n" + " ".join(statement.split())[:400] + "\n")
            if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                # PostgreSQL: the plan as run, with its timings (the statements only read).
                prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
                for row in conn.exec_driver_sql(prefix + statement, params):
                    out.write("    " + str(row[-1]) + "\n")


if __name__ == "__main__":
    main()
