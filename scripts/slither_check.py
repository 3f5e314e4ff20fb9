"""Run slither on the Hardhat project and fail on any unexplained high or medium finding.

Explanations live in contracts/slither-triage.json. An explanation that no longer
matches a finding also fails, so the triage list cannot go stale. Low and informational
findings are printed with their class explanation (or "unexplained") but never fail.

Usage: scripts/slither_check.py [--slither PATH] [--json OUT]
Exit codes: 0 clean or fully explained, 1 unexplained finding, 2 slither did not run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "contracts" / "slither-triage.json"
BLOCKING = {"High", "Medium"}


def run_slither(slither: str, out: Path) -> dict:
    """Runs slither on the project (test contracts and dependencies excluded)."""
    cmd = [
        slither,
        ".",
        "--hardhat-ignore-compile",
        "--hardhat-artifacts-directory",
        "build/artifacts",
        "--hardhat-cache-directory",
        "build/hardhat-cache",
        "--filter-paths",
        "node_modules|contracts/test",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if not out.exists():
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(2)
    report = json.loads(out.read_text())
    if not report.get("success"):
        sys.stderr.write(f"slither failed: {report.get('error')}\n")
        raise SystemExit(2)
    return report


def function_of(finding: dict) -> str:
    """The function (or contract) a finding is about, as slither names it."""
    for element in finding.get("elements", []):
        if element.get("type") == "function":
            parent = element["type_specific_fields"]["parent"]["name"]
            return f"{parent}.{element['type_specific_fields']['signature']}"
    first = finding.get("elements", [{}])[0]
    return str(first.get("name", "?"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slither", default=str(ROOT / ".venv-slither" / "bin" / "slither"))
    parser.add_argument("--json", type=Path, help="also keep slither's JSON report here")
    args = parser.parse_args()

    triage = json.loads(TRIAGE.read_text())
    explained = {(f["check"], f["function"]): f["why"] for f in triage["findings"]}
    classes: dict[str, str] = triage.get("classes", {})

    with tempfile.TemporaryDirectory() as tmp:
        out = args.json or Path(tmp) / "slither.json"
        out.unlink(missing_ok=True)
        report = run_slither(args.slither, out)

    findings = report["results"].get("detectors", [])
    unexplained, used = [], set()
    for f in findings:
        key = (f["check"], function_of(f))
        if f["impact"] in BLOCKING:
            if key in explained:
                used.add(key)
                status = "explained"
            else:
                unexplained.append(f)
                status = "UNEXPLAINED"
        else:
            status = "class: " + ("explained" if f["check"] in classes else "unexplained")
        print(f"{f['impact']:<13} {f['check']:<20} {key[1]:<60} {status}")

    stale = sorted(set(explained) - used)
    for check, function in stale:
        print(f"stale triage entry (no such finding any more): {check} {function}")
    blocking = sum(1 for f in findings if f["impact"] in BLOCKING)
    print(
        f"slither: {len(findings)} findings, {blocking} high/medium "
        f"({blocking - len(unexplained)} explained in {TRIAGE.relative_to(ROOT)}), "
        f"{len(unexplained)} unexplained, {len(stale)} stale"
    )
    for f in unexplained:
        print("\n" + f["description"])
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main())
