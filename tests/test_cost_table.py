"""The cost table in docs/deployment.md is what scripts/cost_table.py computes from the
gas figure it names: recomputing it gives the same table, and that gas figure is the
one the contract's gas benchmark reports (within the README's anchor-gas target)."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import REPO


def test_the_deployment_guides_cost_table_is_recomputed_from_the_gas_it_names() -> None:
    guide = (REPO / "docs" / "deployment.md").read_text()
    block = guide.split("```\ngas per root ", 1)[1].split("```", 1)[0]
    gas = int(re.match(r"([\d,]+)", block).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 45_000 < gas <= 53_000, "gas per root outside the contract's target"
    recomputed = subprocess.run(
        [sys.executable, "scripts/cost_table.py", "--gas", str(gas)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = [line for line in recomputed.splitlines() if line.startswith("|")]
    documented = [line for line in block.splitlines() if line.startswith("|")]
    assert documented == table
    assert len(table) == 2 + 3  # header, separator, 10k / 1M / 100M a day
