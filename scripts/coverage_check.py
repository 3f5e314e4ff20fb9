"""Check solidity-coverage's result: each of our contracts at least 95 % of lines and branches.

Reads coverage.json written by `npm run coverage` (istanbul format). Test helpers under
contracts/test are not ours to cover. Exit code 1 names each contract below the bar.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMUM = 95.0


def percent(hit: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * hit / total


def main() -> int:
    report = json.loads((ROOT / "coverage.json").read_text())
    failures = []
    for path, data in sorted(report.items()):
        name = Path(path).resolve().relative_to(ROOT).as_posix()
        if name.startswith("contracts/test/"):
            continue
        line_hits = {}
        for statement, location in data["statementMap"].items():
            line = location["start"]["line"]
            line_hits[line] = max(line_hits.get(line, 0), data["s"][statement])
        lines = percent(sum(1 for h in line_hits.values() if h), len(line_hits))
        arms = [count for counts in data["b"].values() for count in counts]
        branches = percent(sum(1 for c in arms if c), len(arms))
        ok = lines >= MINIMUM and branches >= MINIMUM
        print(f"{name:<45} lines {lines:6.2f} %  branches {branches:6.2f} %  {'ok' if ok else 'BELOW ' + str(MINIMUM)}")
        if not ok:
            failures.append(name)
    if failures:
        print(f"coverage below {MINIMUM} %: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
