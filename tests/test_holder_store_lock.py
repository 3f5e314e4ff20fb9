"""The holder's disclosure store under two `sign` runs at once: every salt is kept.

The story: an exporter's two terminals (or a script running `sign` in parallel) sign at
the same moment. Each run reads the store, adds its submission and writes the store back.
Without a lock the later write drops the other's entry — and with it the only copy of the
undisclosed fields' salts, so those fields can never be disclosed later.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ledger.disclosure import HolderStore

KEY = bytes.fromhex("11" * 32)
HOLDER = "0x" + "ab" * 20
PER_PROCESS = 40

# Each process waits for the same start time, then adds PER_PROCESS entries of its own.
WRITER = f"""
import sys, time
from pathlib import Path
from ledger.disclosure import HolderStore
path, tag, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
store = HolderStore(path, bytes.fromhex("11" * 32), "0x" + "ab" * 20)
while time.time() < start:
    time.sleep(0.001)
for i in range({PER_PROCESS}):
    store.add({{"uid": f"0x{{tag}}{{i:062x}}", "payload": {{"salt": "x" * 64, "i": i}}}})
"""


def test_two_concurrent_sign_runs_both_keep_every_salt(tmp_path: Path) -> None:
    store_path = tmp_path / "holder.json.disclosures"
    start = time.time() + 1.5  # both interpreters are up and waiting by then
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store_path), tag, str(start)], stderr=subprocess.PIPE)
        for tag in ("a", "b")
    ]
    for writer in writers:
        _out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    entries = HolderStore(store_path, KEY, HOLDER).entries()
    kept = {uid[2] for uid in entries}
    assert len(entries) == 2 * PER_PROCESS, f"{2 * PER_PROCESS - len(entries)} submissions (and their salts) lost"
    assert kept == {"a", "b"}
    assert store_path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "holder.json.disclosures.lock").stat().st_mode & 0o077 == 0


def test_a_run_waits_for_the_lock_instead_of_writing_over_the_holder(tmp_path: Path) -> None:
    """While another process holds the lock, an addition waits; it lands after release."""
    store_path = tmp_path / "holder.disclosures"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(store_path) + '.lock'!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(1.0)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    began = time.monotonic()
    HolderStore(store_path, KEY, HOLDER).add({"uid": "0x" + "cd" * 32, "payload": {}})
    waited = time.monotonic() - began
    holder.wait(timeout=10)
    assert waited > 0.5, f"the addition did not wait for the lock (took {waited:.2f}s)"
    assert list(HolderStore(store_path, KEY, HOLDER).entries()) == ["0x" + "cd" * 32]
