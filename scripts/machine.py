"""What machine a report was made on (for the benchmark and the reliability report)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS and Python, as strings."""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    try:
        mem_kib = next(
            int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kib = 0
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory_gib": f"{mem_kib / 1024 / 1024:.0f}",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }


def describe() -> str:
    """One line: "2 cores (AMD EPYC), 24 GiB, Linux ... x86_64, Python 3.11.7"."""
    m = machine()
    return f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, Python {m['python']}"
