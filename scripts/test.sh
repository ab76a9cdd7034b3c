#!/usr/bin/env bash
# Quick start 2: set everything up and run all checks: lint, types, tests.
# Extra arguments go to pytest (e.g. -k webrtc, -m "not browser").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy pipeline stages trt_engines training benchmarks networks
echo "==> pytest"
# Tests only ever talk over loopback. Where we can (root, unshare), run them in a
# network namespace that has nothing but loopback, so no test can reach further.
if [[ $(id -u) -eq 0 ]] && command -v ip >/dev/null && unshare -n -- true 2>/dev/null; then
  exec unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
