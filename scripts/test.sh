#!/usr/bin/env bash
# Quick start 2: set everything up and run all checks: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy pipeline stages trt_engines training benchmarks networks
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
