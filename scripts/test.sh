#!/usr/bin/env bash
# The whole test suite from a fresh checkout: virtualenv and Python packages, the system packages the
# browser and Prometheus tests drive (Debian's chromium and prometheus), the pinned playwright-core,
# then lint, types and every test. What is already installed is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0

python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]'

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v prometheus >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if command -v npm >/dev/null; then
  npm ci --prefix tests/e2e/browser --silent --no-audit --no-fund
fi

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest
