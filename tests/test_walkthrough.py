"""The exporter walkthrough in docs/walkthrough.md, run exactly as written: its shell
blocks, in order, against a real chain and a real `provenance up` (API and worker)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.chain.anvil import free_port

from .conftest import REPO

WALKTHROUGH = REPO / "docs" / "walkthrough.md"


def shell_blocks(markdown: str) -> list[str]:
    """The ```bash blocks of a markdown document, in order."""
    return re.findall(r"^```bash\n(.*?)^```$", markdown, flags=re.S | re.M)


@pytest.mark.long
def test_an_exporter_following_the_walkthrough_gets_a_verified_shipment_and_a_checked_disclosure(
    tmp_path: Path, default_store_env: dict[str, str]
) -> None:
    blocks = shell_blocks(WALKTHROUGH.read_text())
    assert len(blocks) >= 10
    script = tmp_path / "walkthrough.sh"
    script.write_text("set -euo pipefail\n" + "\n".join(blocks))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PROVENANCE_ANVIL_PORT": str(free_port()),
        "PROVENANCE_API_PORT": str(free_port()),
        **default_store_env,
    }
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=400)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # `up` if the script stopped before its last block
    log = (tmp_path / "up.log").read_text() if (tmp_path / "up.log").exists() else ""
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}\nup.log:\n{log[-3000:]}"
    assert "VERIFIED" in out
    assert re.search(r"Export Lyon SARL \(0x[0-9a-fA-F]{40}\)", out), out  # the exporter by its on-chain name
    assert re.search(r"design\s+VALID", out), out
    assert oct((tmp_path / "holder.json.disclosures").stat().st_mode & 0o777) == "0o600"
