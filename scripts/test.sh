#!/usr/bin/env bash
# The test command: installs what is needed, then runs every test and lint.
#   contracts: compile (offline solc), solhint, Hardhat tests
#   python:    ruff, mypy, pytest (real anvil, real SQLite and PostgreSQL)
# Extra arguments go to pytest (e.g. scripts/test.sh -k anchoring).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

echo "==> contracts: compile, lint, test"
npx hardhat compile --quiet
npm run --silent lint:sol
npx hardhat test

echo "==> python: lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

echo "==> python: tests"
.venv/bin/pytest "$@"
