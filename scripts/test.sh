#!/usr/bin/env bash
# The test command: installs what is needed, then runs every test and lint.
#   contracts: compile (offline solc), solhint, slither (high/medium findings explained),
#              Hardhat tests, solidity-coverage (>= 95 % lines and branches per contract)
#   python:    ruff, mypy, pytest (real anvil, real SQLite and PostgreSQL)
# Extra arguments go to pytest (e.g. scripts/test.sh -k anchoring).
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
.venv/bin/pytest --reliability-json=build/reliability.json "$@"
