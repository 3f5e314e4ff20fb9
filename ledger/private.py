"""Local files holding secrets or private data (the SQLite database, the data key, demo
credentials, keystores) are readable by their owner only: created 0600, never widened."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, which is 0600 from its creation on (no readable window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    os.fchmod(fd, PRIVATE)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def ensure_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if absent; take group and other bits off an
    existing one (files made by earlier versions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE)
