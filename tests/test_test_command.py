"""The test command itself: it must pass when run twice in the same checkout, and the
reliability report must show a failing test as failed.

Running the whole suite twice would double CI's time; what broke the second run was
pytest's argument parsing with the previous run's `build/reliability.json` present, so
this runs scripts/test.sh's own pytest line (read from the script) twice with
`--collect-only`, and the reliability plumbing on a deliberately failing test.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO


def pytest_line() -> str:
    lines = [ln.strip() for ln in (REPO / "scripts" / "test.sh").read_text().splitlines()]
    found = [ln for ln in lines if ln.startswith(".venv/bin/pytest ")]
    assert len(found) == 1, found
    return found[0].removesuffix(" || status=$?")


def run_line(line: str, json_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    script = f"set -- {' '.join(extra)}\n{line}"
    env = {**os.environ, "RELIABILITY_JSON": str(json_path)}
    return subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.long
def test_the_test_commands_pytest_line_runs_twice_in_the_same_checkout(tmp_path: Path) -> None:
    line = pytest_line()
    assert "$RELIABILITY_JSON" in line
    # Over pytest-xdist workers; --collect-only turns xdist off, so the runs below collect
    # in one process.
    assert " -n " in line and " --dist " in line, line
    json_path = tmp_path / "build" / "reliability.json"
    first = run_line(line, json_path, "--collect-only", "-q")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert json_path.exists(), "the first run writes the records"
    second = run_line(line, json_path, "--collect-only", "-q")  # the file is there now
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    collected = [run.stdout.splitlines()[-1].split(" in ")[0] for run in (first, second)]
    # "N tests collected", or "N/M tests collected (K deselected)" when a database is left out.
    assert collected[0] == collected[1] and " tests collected" in collected[0], collected
    # The old form fails exactly as reported in issue 21: this check can fail.
    old = run_line('.venv/bin/pytest --reliability-json "$RELIABILITY_JSON" "$@"', json_path, "--collect-only", "-q")
    assert old.returncode != 0 and "unrecognized arguments: --reliability-json" in old.stderr, old.stderr[-2000:]


FAILING = """
from tests.conftest import ReliabilityRecorder


def test_records_then_fails(reliability: ReliabilityRecorder) -> None:
    reliability.record("input", "deliberate failure after recording", 1, "nothing")
    raise AssertionError("deliberately failing")


def test_fails_before_recording(reliability: ReliabilityRecorder) -> None:
    raise AssertionError("failed before recording")
    reliability.record("input", "never reached", 1, "nothing")


def test_passes(reliability: ReliabilityRecorder) -> None:
    reliability.record("fault", "a passing stand-in", 2, "fine", kind="sequential")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "load"]], ids=["one-process", "xdist-workers"])
def test_a_failing_test_is_shown_as_failed_in_the_report(tmp_path: Path, workers: list[str]) -> None:
    """In one process, and over pytest-xdist workers as the test command runs the suite:
    there the workers' records reach the controller, which alone writes the file."""
    # Named on the command line, so collected although its name is not test_*.py: the
    # collection of `tests` by the twice-run test, maybe at the same moment on another
    # xdist worker, does not see it.
    module = REPO / "tests" / f"zz_deliberately_failing_{os.getpid()}.py"
    module.write_text(FAILING)
    json_path, report = tmp_path / "reliability.json", tmp_path / "report.md"
    try:
        run = subprocess.run(
            [
                str(REPO / ".venv/bin/pytest"),
                str(module),
                f"--reliability-json={json_path}",
                "-q",
                "-p",
                "no:cacheprovider",
                *workers,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        module.unlink()
    assert run.returncode == 1, run.stdout[-2000:]
    records = json.loads(json_path.read_text())["records"]
    by_what = {r["what"].rsplit("::", 1)[-1]: r for r in records}
    assert by_what["deliberate failure after recording"]["result"] == "failed"
    assert by_what["test_fails_before_recording"]["result"] == "failed"
    assert by_what["test_fails_before_recording"]["group"] == "unrecorded"
    assert by_what["a passing stand-in"]["result"] == "passed"
    rendered = subprocess.run(
        [
            str(REPO / ".venv/bin/python"),
            "scripts/reliability_report.py",
            "--json",
            str(json_path),
            "--out",
            str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    text = report.read_text()
    assert "| deliberate failure after recording | 1 | - | nothing | **FAILED** |" in text
    assert "failed before recording" in text and "test_fails_before_recording` | **FAILED**" in text
    assert "Tests run: 3 (1 passed, 2 failed)" in text
    assert "## Stand-ins for faults" in text and "## Real faults" not in text


def test_no_stale_report_is_committed() -> None:
    """The report is an artefact of each run (build/reliability-report.md)."""
    assert not (REPO / "docs" / "reliability-report.md").exists()


def test_the_commands_the_readme_names_are_committed_executable() -> None:
    """A clean clone runs `.ci/run`, which runs `scripts/test.sh`: git must record both as
    executable, or CI stops at once with 'Permission denied' (it happened once)."""
    listed = subprocess.run(
        ["git", "ls-files", "-s", ".ci/run", "scripts/test.sh", "scripts/install.sh", "scripts/run.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    modes = {line.split()[3]: line.split()[0] for line in listed}
    assert modes == dict.fromkeys([".ci/run", "scripts/install.sh", "scripts/run.sh", "scripts/test.sh"], "100755")
