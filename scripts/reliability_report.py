"""Render the reliability report from one test run's records.

`scripts/test.sh` runs pytest with `--reliability-json=build/reliability.json` and then
this script, so the report (build/reliability-report.md, an artefact of that run, never
committed) describes exactly the code that was just tested: every fault injected and
every class of bad input tried, how many times, what happened, and whether the test
that made the record passed. Records are made by the tests themselves (fixture
`reliability` in tests/conftest.py); a test that failed before recording gets a row of
its own, so a failure is always visible here.

Usage: scripts/reliability_report.py [--json build/reliability.json] [--out build/reliability-report.md]
Exit code: 0 when written (the test command keeps pytest's own exit code).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import REAL_FAULTS, STAND_IN_FAULTS  # noqa: E402 - after the path is set

GROUPS = {
    "real": "Real faults (real processes killed, databases stopped, chains stopped or reorganised)",
    "stand-in": "Stand-ins for faults (exceptions from a test hook, sequential calls for concurrency)",
    "input": "Hostile input",
    "access": "Access control",
    "fuzz": "Schema-driven fuzzing (cases counted by schemathesis)",
    "property": "Property-based tests (valid cases counted by hypothesis)",
}
RESULTS = {
    "passed": "passed",
    "failed": "**FAILED**",
    "error": "**ERROR**",
    "xfailed": "known gap (xfail)",
    "xpassed": "**XPASSED** (gap closed? remove the xfail)",
    "skipped": "skipped",
}


def section_of(row: dict[str, Any]) -> str:
    if row["group"] == "fault":
        return "real" if row["kind"] in REAL_FAULTS else "stand-in"
    return str(row["group"])


def backend_of(test_id: str) -> str:
    for name in ("sqlite", "postgresql"):
        if f"[{name}" in test_id or f"-{name}" in test_id:
            return name
    return "-"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def times(records: list[dict[str, Any]]) -> str:
    """The count, per storage backend when the same class ran on several (each backend's
    run is its own set of cases; they are not added up into one figure)."""
    by_backend: dict[str, int] = defaultdict(int)
    for r in records:
        by_backend[backend_of(r["test"])] += int(r["tried"])
    if len(by_backend) == 1:
        return f"{next(iter(by_backend.values())):,}"
    return "<br>".join(f"{n:,} ({'no database' if b == '-' else b})" for b, n in sorted(by_backend.items()))


def result_of(records: list[dict[str, Any]]) -> str:
    results = {r["result"] for r in records}
    for bad in ("error", "failed", "xpassed", "xfailed", "skipped"):
        if bad in results:
            return RESULTS[bad]
    return RESULTS["passed"]


def render(run: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = run["records"]
    tests: list[dict[str, Any]] = run["tests"]
    counts: dict[str, int] = defaultdict(int)
    for t in tests:
        counts[t["outcome"]] += 1
    seconds = (run["finished"] - run["started"]) if run.get("started") else 0.0
    recorded = [r for r in rows if r["group"] != "unrecorded"]
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in recorded:
        grouped[section_of(row)][row["what"]].append(row)
    outcome_counts = ", ".join(f"{counts[k]} {k}" for k in RESULTS if counts.get(k))
    lines = [
        "# Reliability report",
        "",
        "Written by `scripts/test.sh` (via `scripts/reliability_report.py`) from the records the",
        "tests of this very run made (fixture `reliability` in `tests/conftest.py`). It is an",
        "artefact of the run, not a committed document: it describes the checkout it ran on.",
        "",
        f"- Run: {datetime.fromtimestamp(run['finished'], UTC).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`pytest {' '.join(run['args'])}`, exit status {run['exitstatus']}",
        f"- Machine: {describe()}",
        f"- Tests run: {len(tests)} ({outcome_counts}) in {seconds:.0f} s",
        f"- Records: {len(recorded)} from {len({r['test'] for r in recorded})} tests",
        "",
        "| section | classes | times | result |",
        "|---|---:|---:|---|",
    ]
    for key, title in GROUPS.items():
        classes = grouped.get(key, {})
        if classes:
            records = [r for rs in classes.values() for r in rs]
            lines.append(f"| {title} | {len(classes)} | {times(records)} | {result_of(records)} |")
    unrecorded = [r for r in rows if r["group"] == "unrecorded"]
    if unrecorded:
        lines.append(f"| Tests that stopped before recording | {len(unrecorded)} | - | {result_of(unrecorded)} |")
    kinds = {**REAL_FAULTS, **STAND_IN_FAULTS}
    for key, title in GROUPS.items():
        classes = grouped.get(key, {})
        if not classes:
            continue
        lines += ["", f"## {title}", ""]
        fault = key in ("real", "stand-in")
        header = "| what was injected | kind | times | storage | what happened (asserted) | result |"
        lines += [
            header if fault else header.replace(" kind |", ""),
            "|---|" + ("---|" if fault else "") + "---:|---|---|---|",
        ]
        for what, records in classes.items():
            backends = ", ".join(sorted({backend_of(r["test"]) for r in records} - {"-"})) or "-"
            outcomes = list(dict.fromkeys(r["outcome"] for r in records))
            outcome = (
                outcomes[0]
                if len(outcomes) == 1
                else "<br>".join(f"{backend_of(r['test'])}: {r['outcome']}" for r in records)
            )
            kind = f" {cell(kinds[records[0]['kind']])} |" if fault else ""
            lines.append(
                f"| {cell(what)} |{kind} {times(records)} | {backends} | {cell(outcome)} | {result_of(records)} |"
            )
    if unrecorded:
        lines += ["", "## Tests that stopped before recording", "", "| test | result | message |", "|---|---|---|"]
        for r in unrecorded:
            lines.append(f"| `{r['test']}` | {RESULTS[r['result']]} | {cell(r['outcome'][:300])} |")
    failed = [t for t in tests if t["outcome"] in ("failed", "error", "xpassed")]
    lines += ["", "## Every failed test of the run", ""]
    lines += [f"- `{t['test']}`: {RESULTS[t['outcome']]}" for t in failed] or ["None."]
    known = [t for t in tests if t["outcome"] == "xfailed"]
    if known:
        lines += ["", "## Known gaps (tests marked xfail: they assert what should hold, and it does not)", ""]
        lines += [f"- `{t['test']}`" for t in known]
    lines += ["", "## Tests behind the records", ""]
    lines += [f"- `{test}`" for test in sorted({r["test"] for r in recorded})]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "reliability.json")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "reliability-report.md")
    args = parser.parse_args()
    run = json.loads(args.json.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(run))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
