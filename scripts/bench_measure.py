"""The measuring half of scripts/bench_store.py, run as a fresh process: opens the store
with the ledger code in argv[1] and verifies the given distinct shipments once each,
then asks the first 100 again (repeat queries, answered by the verdict cache). With
"profile", cProfiles all but the first verification; with "explain", writes the query
plan of every statement one more (uncached) verification issues. Prints JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, sys.argv[1])

from ledger.chain.manifest import Manifest
from ledger.config import Settings
from ledger.core import Ledger


def main() -> None:
    args = json.loads(sys.argv[2])
    settings = Settings(home=Path(args["home"]), database_url=args["db"], rpc_url=args["rpc"], confirmations=1)
    ledger = Ledger.open(settings, manifest=Manifest(**json.loads(args["manifest"])))
    times: list[float] = []
    cpu: list[float] = []  # this process's CPU time per verification (the machine is shared)
    verdicts: dict[str, int] = {}
    profiler = None
    if args.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    for i, uid in enumerate(args["sample"]):
        if profiler is not None and i == 1:
            profiler.enable()  # the first verification (completeness measured) is reported apart
        t, c = time.perf_counter(), time.process_time()
        result = ledger.verify_shipment(uid)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        verdicts[result.verdict.value] = verdicts.get(result.verdict.value, 0) + 1
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    repeats = []
    for uid in args["sample"][:100]:
        t = time.perf_counter()
        ledger.verify_shipment(uid)
        repeats.append((time.perf_counter() - t) * 1000)
    if args.get("explain"):
        explain(ledger, args["sample"][0], args["explain"])
    print(json.dumps({"times": times, "cpu": cpu, "verdicts": verdicts, "repeats": repeats}))


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
                for row in conn.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params):
                    out.write("    " + str(row[-1]) + "\n")


if __name__ == "__main__":
    main()
