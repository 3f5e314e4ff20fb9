#!/usr/bin/env bash
# The run command: installs what is needed, then starts the embedded system
# (local anvil chain with state in ./var, contracts deployed once, manifest printed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
npx hardhat compile --quiet
exec .venv/bin/provenance up "$@"
