#!/usr/bin/env bash
# Install everything the project needs, from the lock files, into ./node_modules and
# ./.venv. Idempotent and quick when nothing changed (a stamp records what was installed).
#   --with-slither  also the static analyser, in its own ./.venv-slither (it needs web3 7,
#                   the project pins web3 8), from requirements-slither.lock
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

npm_stamp=$(stamp_of package.json package-lock.json)
if [ ! -f node_modules/.install-stamp ] || [ "$(cat node_modules/.install-stamp)" != "$npm_stamp" ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_stamp" > node_modules/.install-stamp
fi

py_stamp=$(stamp_of pyproject.toml requirements.lock)
if [ ! -f .venv/.install-stamp ] || [ "$(cat .venv/.install-stamp)" != "$py_stamp" ]; then
  echo "==> python venv (.venv)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$py_stamp" > .venv/.install-stamp
fi

# The customs officer's console (console/ -> api/console_dist/, served at /console).
console_stamp=$( (cd console && find . -type f ! -path './node_modules/*' | sort | xargs cat; cat ../package-lock.json) | sha256sum | cut -c1-16)
if [ ! -f api/console_dist/.build-stamp ] || [ "$(cat api/console_dist/.build-stamp)" != "$console_stamp" ]; then
  echo "==> vite build (console)"
  node_modules/.bin/vite build --config console/vite.config.js
  echo "$console_stamp" > api/console_dist/.build-stamp
fi

# Headless Chromium for the test that renders /docs (Debian's package; only as root and
# only when it is missing).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> apt-get install chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ "${1:-}" = "--with-slither" ]; then
  sl_stamp=$(stamp_of requirements-slither.lock)
  if [ ! -f .venv-slither/.install-stamp ] || [ "$(cat .venv-slither/.install-stamp)" != "$sl_stamp" ]; then
    echo "==> slither venv (.venv-slither)"
    "$PYTHON" -m venv .venv-slither
    .venv-slither/bin/pip install --quiet --disable-pip-version-check -r requirements-slither.lock
    echo "$sl_stamp" > .venv-slither/.install-stamp
  fi
fi
