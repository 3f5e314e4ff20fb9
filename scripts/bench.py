"""The benchmark: every figure of SPEC section 6 in one run, side by side with the systems
users would pick instead, on one local anvil chain and this machine.

Run: .venv/bin/python scripts/bench.py [--quick] [--update-readme]
(`scripts/install.sh` first, or run it through `scripts/bench.sh`, which does.)

Writes build/bench/results.json, build/bench/results.md and build/bench/chart.png; with
--update-readme it also puts the table, date and machine into README.md. Each figure is
the median of several runs with min and max; each comparison is a ratio measured in the
same run. It reports and never fails the build: a part that breaks is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.chain.anvil import start_anvil  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from benchenv import code_commit, replace_readme_block  # noqa: E402
from machine import machine  # noqa: E402

PEERS = ROOT / "scripts" / "bench-peers"
PY = sys.executable


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def install_peers() -> None:
    """EAS and the document store, as published, from their own lock file."""
    stamp = PEERS / "node_modules" / ".install-stamp"
    wanted = (PEERS / "package-lock.json").read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], cwd=PEERS, check=True
        )
        stamp.write_text(wanted)


def settle(limit: float = 1.0, longest: float = 120.0) -> None:
    """Wait (at most `longest` s) for the machine to calm down after the previous part:
    until the 1-minute load average is at most `limit`, so a part is not measured while
    the last one's processes still weigh on the load."""
    started = time.monotonic()
    while os.getloadavg()[0] > limit and time.monotonic() - started < longest:
        time.sleep(2.0)
    print(f"    load average {os.getloadavg()[0]:.1f} after {time.monotonic() - started:.0f} s", flush=True)


def run_part(name: str, cmd: list[str], out: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs one benchmark part as its own process, once the machine has settled; its
    JSON, or the error it hit."""
    step(name)
    settle()
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    seconds = round(time.monotonic() - started, 1)
    if done.returncode != 0 or not out.exists():
        print(f"    {name} FAILED (exit {done.returncode}); reported, not fatal", flush=True)
        return {"error": f"exit code {done.returncode}", "seconds": seconds}
    result: dict[str, Any] = json.loads(out.read_text())
    result["seconds"] = seconds
    print(f"    done in {seconds} s", flush=True)
    return result


def gas_part(out_dir: Path) -> dict[str, Any]:
    step("gas: ours, EAS and the document store on one anvil chain")
    try:
        install_peers()
    except subprocess.CalledProcessError as exc:
        return {"error": f"installing the peer contracts failed: {exc}"}
    node = start_anvil(state_file=None)
    try:
        out = out_dir / "gas.json"
        out.unlink(missing_ok=True)
        return run_part(
            "gas",
            ["npx", "hardhat", "run", "scripts/bench-gas.js", "--network", "anvil"],
            out,
            {"BENCH_RPC_URL": node.rpc_url, "BENCH_OUT": str(out)},
        )
    finally:
        node.stop()


# ------------------------------------------------------------------------ reporting


def gas_of(gas: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((r for r in gas.get("rows", []) if r.get("key") == key), None)


def med(figure: Any) -> float | None:
    return figure.get("median") if isinstance(figure, dict) else None


def spread(figure: Any, unit: str = "", digits: int = 0) -> str:
    if not isinstance(figure, dict) or "median" not in figure:
        return "not measured"
    f = f"{{:,.{digits}f}}"
    low, high = f.format(figure["min"]), f.format(figure["max"])
    return f"{f.format(figure['median'])}{unit} ({low}–{high}, {figure['runs']} runs)"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each SPEC section 6 target with the measured figure and whether it is met."""
    core, verify, http, replay, gas = (results.get(k, {}) for k in ("core", "verify", "http", "replay", "gas"))
    rows: list[dict[str, Any]] = []

    def add(what: str, target: str, measured: str, met: bool | None) -> None:
        rows.append({"what": what, "target": target, "measured": measured, "met": met})

    fast = core.get("signatures", {}).get("fast_path_per_s")
    add("signature checks, one core", "≥ 10,000 /s", spread(fast, " /s"), _ge(fast, 10_000))
    for label, key in (("SQLite", "ingest_sqlite_per_s"), ("PostgreSQL", "ingest_postgresql_per_s")):
        figure = core.get(key)
        add(f"ingest via the library, {label}", "≥ 2,000 /s", spread(figure, " /s"), _ge(figure, 2000))
    figure = http.get("ingest_per_s")
    add("ingest via HTTP", "≥ 1,000 /s", spread(figure, " /s"), _ge(figure, 1000))
    root, doc = gas_of(gas, "ours.batch_4096"), gas_of(gas, "docstore.issue_4096")
    if root and doc:
        ratio = root["gas"] / doc["gas"]
        add(
            "batch root gas",
            "≤ 53,000 and ≤ 1.1× DocumentStore issue",
            f"{root['gas']:,} ({ratio:.3f}× DocumentStore's {doc['gas']:,}, same chain)",
            root["gas"] <= 53_000 and ratio <= 1.1,
        )
        add(
            "gas per attestation at 4,096",
            "≤ 13",
            f"{root['perAttestation']}",
            root["perAttestation"] <= 13,
        )
    direct = gas_of(gas, "ours.attest")
    if direct:
        add("direct attestation gas", "≤ 100,000", f"{direct['gas']:,}", direct["gas"] <= 100_000)
    for records, figures in _store_sizes(verify):
        where = f" ({records:,} records, distinct shipments, first time each)"
        p50, p99_in = figures.get("p50_ms"), figures.get("p99_ms")
        what = "verification, 10 hops, 2 licences, in-process"
        add(what, "p50 ≤ 5 ms", f"{p50} ms{where}", None if p50 is None else p50 <= 5)
        add(what, "p99 ≤ 15 ms", f"{p99_in} ms{where}", None if p99_in is None else p99_in <= 15)
    distinct = results.get("http_distinct", {})
    rate, p99 = distinct.get("verify_per_s"), distinct.get("verify_p99_ms")
    where = f" ({distinct.get('records', 0):,} records, {distinct.get('distinct_shipments', 0):,} distinct shipments)"
    what = "verification over HTTP, 10 hops, 2 licences"
    add(what, "≥ 500 /s", _one(rate, " /s") + where, None if rate is None else rate >= 500)
    add(what, "p99 ≤ 50 ms", _one(p99, " ms") + where, None if p99 is None else p99 <= 50)
    add(
        "auditor replay",
        "≥ 10,000 /s",
        spread(replay.get("replay_rate_per_s"), " /s") + f" at {replay.get('attestations', 0):,}",
        _ge(replay.get("replay_rate_per_s"), 10_000),
    )
    rss = replay.get("peak_tree_rss_mib") or replay.get("peak_rss_mib")
    add(
        "replay memory",
        "1,000,000 in ≤ 1 GiB",
        spread(rss, " MiB", 0) + f" peak RSS with workers at {replay.get('attestations', 0):,}",
        _le(rss, 1024) if replay.get("attestations", 0) >= 1_000_000 else None,
    )
    return rows


def _one(figure: Any, unit: str) -> str:
    """A single measured figure (one run), or "not measured"."""
    return "not measured" if figure is None else f"{figure:,}{unit}"


def _store_sizes(verify: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The verification figures of scripts/bench_store.py, by store size."""
    return sorted(((int(n), f) for n, f in verify.get("sizes", {}).items()), key=lambda item: item[0])


def _ge(figure: Any, bound: float) -> bool | None:
    value = med(figure)
    return None if value is None else value >= bound


def _le(figure: Any, bound: float) -> bool | None:
    value = med(figure)
    return None if value is None else value <= bound


def markdown(results: dict[str, Any]) -> str:
    m, gas = results["machine"], results.get("gas", {})
    versions = gas.get("versions", {})
    lines = [
        f"Measured {results['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}; code at commit {results.get('commit', '?')}; chain {versions.get('chain', '?')}; "
        f"EAS {versions.get('eas', '?')}, "
        f"document store {versions.get('documentStore', '?')}. "
        f"Command: `scripts/bench.sh{' --quick' if results['quick'] else ''}`.",
        "",
        "**Gas per record, same chain, same run** (EAS `multiAttest` above 64 records is sent as transactions of 64)",
        "",
        "| batch size | ours: batch root | EAS `multiAttest` | DocumentStore `issue(root)` "
        "| ours / DocumentStore | ours / EAS |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in (1, 16, 256, 4096):
        ours, eas, doc = (gas_of(gas, f"{p}_{size}") for p in ("ours.batch", "eas.multi", "docstore.issue"))
        if ours and eas and doc:
            lines.append(
                f"| {size:,} | {ours['perAttestation']:,} | {eas['perAttestation']:,} | {doc['perAttestation']:,} "
                f"| {ours['gas'] / doc['gas']:.3f} | {ours['perAttestation'] / eas['perAttestation']:.5f} |"
            )
    single = [
        ("direct attestation (signature and role checked in the contract)", "ours.attest", "eas.attest"),
        ("revocation", "ours.revoke", "eas.revoke"),
    ]
    lines += ["", "| one operation | ours | EAS | ours / EAS |", "|---|---:|---:|---:|"]
    for label, ours_key, eas_key in single:
        ours, eas = gas_of(gas, ours_key), gas_of(gas, eas_key)
        if ours and eas:
            lines.append(f"| {label} | {ours['gas']:,} | {eas['gas']:,} | {ours['gas'] / eas['gas']:.3f} |")
    view = gas_of(gas, "ours.verify_inclusion")
    if view:
        lines.append(
            f"| inclusion proof check (`verifyInclusion`, 4,096 leaves; estimateGas) | {view['gas']:,} | – | – |"
        )
    core, verify, http, replay = (results.get(k, {}) for k in ("core", "verify", "http", "replay"))
    distinct = results.get("http_distinct", {})
    sig = core.get("signatures", {})
    lines += [
        "",
        "**Throughput and latency** (median of runs, min–max in brackets)",
        "",
        "| what | measured |",
        "|---|---:|",
        f"| signature checks, our fast path (one core) | {spread(sig.get('fast_path_per_s'), ' /s')} |",
        f"| signature checks, eth-account generic path | {spread(sig.get('eth_account_generic_per_s'), ' /s')} |",
        f"| raw secp256k1 recovery (coincurve, the limit) | {spread(sig.get('raw_secp256k1_recover_per_s'), ' /s')} |",
        f"| fast path / limit, same run | {spread(sig.get('fast_over_limit'), '', 3)} |",
        f"| fast path / eth-account, same run | {spread(sig.get('fast_over_generic'), '×', 2)} |",
        f"| ingest via the library, SQLite | {spread(core.get('ingest_sqlite_per_s'), ' /s')} |",
        f"| ingest via the library, PostgreSQL | {spread(core.get('ingest_postgresql_per_s'), ' /s')} |",
        f"| ingest via HTTP ({http.get('clients', '?')} client processes, batches of 100, "
        f"{http.get('api_workers', '?')} API processes) | {spread(http.get('ingest_per_s'), ' /s')} |",
    ]
    for records, v in _store_sizes(verify):
        lines += [
            f"| verification in-process, distinct 10-hop 2-licence shipments, first time each, store of "
            f"{records:,} records ({v.get('distinct_shipments')} shipments), p50 / p99 "
            f"| {v.get('p50_ms')} ms / {v.get('p99_ms')} ms |",
            f"| repeat queries of the same shipments (verdict cache), store of {records:,} records, p50 "
            f"| {v.get('repeat_p50_ms')} ms |",
        ]
    lines += [
        f"| verification over HTTP, distinct 10-hop 2-licence shipments, first time each, store of "
        f"{distinct.get('records', 0):,} records ({distinct.get('distinct_shipments', 0):,} shipments, "
        f"{distinct.get('clients', '?')} client processes, {distinct.get('api_workers', '?')} API processes "
        f"started fresh) | {_one(distinct.get('verify_per_s'), ' /s')}, "
        f"p50 {_one(distinct.get('verify_p50_ms'), ' ms')}, "
        f"p99 {_one(distinct.get('verify_p99_ms'), ' ms')}; server CPU "
        f"{_one(distinct.get('server_cpu_ms_per_request'), ' ms')} a request |",
        f"| repeat queries over HTTP: one 10-hop shipment asked again and again (verdict cache; not what a lane "
        f"sees) | {spread(http.get('verify_per_s'), ' /s')}, p50 {spread(http.get('verify_p50_ms'), ' ms', 1)}, "
        f"p99 {spread(http.get('verify_p99_ms'), ' ms', 1)} |",
        f"| auditor replay, {replay.get('attestations', 0):,} attestations "
        f"| {spread(replay.get('replay_rate_per_s'), ' /s')} |",
        f"| auditor replay, peak RSS: main process / with its workers (summed) "
        f"| {spread(replay.get('peak_rss_mib'), ' MiB')} / {spread(replay.get('peak_tree_rss_mib'), ' MiB')} |",
        "",
        "**SPEC §6 targets**",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
    ]
    for t in results["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['what']} | {t['target']} | {t['measured']} | {met} |")
    errors = [f"{k}: {v['error']}" for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if errors:
        lines += ["", "Parts that failed in this run: " + "; ".join(errors)]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gas = results.get("gas", {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    sizes = [1, 16, 256, 4096]
    for prefix, label, style in (
        ("ours.batch", "ours (batch root)", "o-"),
        ("docstore.issue", "DocumentStore issue(root)", "s--"),
        ("eas.multi", "EAS multiAttest", "^-"),
    ):
        points = [(s, r["perAttestation"]) for s in sizes if (r := gas_of(gas, f"{prefix}_{s}"))]
        if points:
            left.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("records per batch")
    left.set_ylabel("gas per record (log)")
    left.set_title("Gas per record, same anvil chain, same run")
    left.grid(True, which="both", alpha=0.3)
    left.legend()

    rows = [t for t in results["targets"] if t["met"] is not None]
    names = [f"{t['what']}\n{t['target']}" for t in rows]
    colours = ["tab:green" if t["met"] else "tab:red" for t in rows]
    right.barh(range(len(rows)), [1] * len(rows), color=colours)
    right.set_yticks(range(len(rows)), names, fontsize=7)
    right.set_xticks([])
    right.invert_yaxis()
    right.set_title("SPEC §6 targets: green met, red not met")
    for i, t in enumerate(rows):
        right.text(0.02, i, t["measured"][:70], va="center", fontsize=7, color="white")
    fig.suptitle(f"provenance-ledger benchmark, {results['date']}, {results['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_readme(table: str) -> None:
    if replace_readme_block(ROOT / "README.md", "bench", table):
        print("README.md updated")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: checks the command works")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--update-readme", action="store_true", help="put the table into README.md")
    parser.add_argument(
        "--replay-n", type=int, default=1_000_000, help="attestations in the replay part (SPEC §6: memory at 1,000,000)"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: gas,core,verify,http,http_distinct,replay"
    )
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    q = args.quick
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "commit": code_commit(ROOT),
        "quick": q,
    }
    parts: dict[str, tuple[list[str], Path]] = {
        "core": (
            [PY, "scripts/bench_core.py", "--n", "1000" if q else "4000", "--runs", "2" if q else "5", "--postgres"],
            out / "core.json",
        ),
        "verify": (  # distinct shipments in a realistic store, each asked once, in a fresh process
            [
                *[PY, "scripts/bench_store.py", "--sizes", "2000" if q else "10000,100000"],
                *["--sample", "50" if q else "300", "--store", str(out / "store-sqlite")],
            ],
            out / "verify.json",
        ),
        "http": (  # ingest over HTTP, and one shipment asked again and again (the verdict cache)
            [
                *[PY, "scripts/bench_http.py", "--seconds", "3" if q else "10"],
                *["--repeats", "2" if q else "3", "--ingest", "1000" if q else "6000"],
            ],
            out / "http.json",
        ),
        "http_distinct": (  # what a lane sees: the verify part's store, distinct shipments, once each
            [
                *[PY, "scripts/bench_http.py", "--store", str(out / "store-sqlite")],
                *["--sample", "200" if q else "2000"],
            ],
            out / "http-distinct.json",
        ),
        "replay": (
            [PY, "scripts/bench_replay.py", "--n", "5000" if q else str(args.replay_n), "--repeats", "2" if q else "3"],
            out / "replay.json",
        ),
    }
    if "gas" not in skip:
        results["gas"] = gas_part(out)
    for name, (cmd, path) in parts.items():
        if name in skip:
            continue
        path.unlink(missing_ok=True)
        results[name] = run_part(name, [*cmd, "--out", str(path)], path)
    results["targets"] = targets(results)
    results["seconds"] = round(time.monotonic() - started)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "results.md").write_text(table)
    try:
        chart(results, out / "chart.png")
    except Exception as exc:  # noqa: BLE001 - the chart is a convenience; the figures are in the JSON
        print(f"chart not drawn: {exc}")
    print("\n" + table)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'chart.png'} in {results['seconds']} s")
    if args.update_readme:
        update_readme(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
