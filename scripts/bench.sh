#!/usr/bin/env bash
# The benchmark command: installs what is needed, then runs scripts/bench.py (all of SPEC
# section 6, beside EAS and the document store, on a local anvil chain).
#   scripts/bench.sh [--quick] [--update-readme]
# Writes build/bench/results.{json,md} and build/bench/chart.png. Never fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
npx hardhat compile --quiet
exec .venv/bin/python scripts/bench.py "$@"
