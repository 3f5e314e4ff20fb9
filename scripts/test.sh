#!/usr/bin/env bash
# The test command: installs what is needed, then runs every test and lint.
#   contracts: compile (offline solc), solhint, slither (high/medium findings explained),
#              Hardhat tests, solidity-coverage (>= 95 % lines and branches per contract)
#   python:    ruff, mypy, pytest (real anvil, real SQLite and PostgreSQL), line coverage
#              of ledger/ and api/ over pytest and every Python process it starts, with a
#              floor (fail_under in pyproject.toml) that fails the run
# Extra arguments go to pytest (e.g. scripts/test.sh -k anchoring); the coverage of such a
# partial run is reported but not held to the floor. Writes build/reliability-report.md
# from this run's records, whether or not the tests passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --with-slither

echo "==> contracts: compile, lint, test"
npx hardhat compile --quiet
npm run --silent lint:sol
.venv/bin/python scripts/slither_check.py
npx hardhat test
npm run --silent coverage >/dev/null  # same tests, instrumented; the check below prints the figures
.venv/bin/python scripts/coverage_check.py

echo "==> python: lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

echo "==> python: tests"
# `tests` named and the option's value after "=": with a bare `--reliability-json PATH`,
# an existing PATH (from the previous run) is taken for a folder to collect before
# tests/conftest.py defines the option, and the second run stops at once
# (tests/test_test_command.py runs this very line twice).
RELIABILITY_JSON=${RELIABILITY_JSON:-build/reliability.json}
rm -f "$RELIABILITY_JSON" build/reliability-report.md
# Coverage starts in every Python process that inherits COVERAGE_PROCESS_START (through
# the .pth file coverage installs), pytest included; each writes its own data file there.
rm -rf build/coverage && mkdir -p build/coverage
export COVERAGE_PROCESS_START="$PWD/pyproject.toml" COVERAGE_FILE="$PWD/build/coverage/data" COVERAGE_SOURCE_ROOT="$PWD"
# Four pytest-xdist workers on this 2-core machine: most of the slow tests wait (on
# subprocesses, anvil, servers, recovery after SIGKILL) rather than compute. Tests go out
# one at a time (--maxschedchunk 1; by default a worker gets a quarter of its share at
# once), `long` ones first; `alone` ones (timing-sensitive) last, each while no other test
# runs (tests/conftest.py). `-n 0` among the extra arguments runs everything in one process.
status=0
.venv/bin/pytest tests -n 4 --dist load --maxschedchunk 1 --reliability-json="$RELIABILITY_JSON" --durations=25 "$@" || status=$?
unset COVERAGE_PROCESS_START

echo "==> python coverage: lines of ledger/ and api/ (floor: fail_under in pyproject.toml)"
if ! .venv/bin/coverage combine --quiet; then
  echo "no coverage data was written"
  [ "$status" -ne 0 ] || status=1
elif [ "$#" -eq 0 ]; then
  .venv/bin/coverage report || { [ "$status" -ne 0 ] || status=1; }
else
  .venv/bin/coverage report --fail-under=0 || true  # a partial run: figures only
fi
unset COVERAGE_FILE COVERAGE_SOURCE_ROOT

echo "==> reliability report (this run's records)"
.venv/bin/python scripts/reliability_report.py --json "$RELIABILITY_JSON" --out build/reliability-report.md
exit "$status"
