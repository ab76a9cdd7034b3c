#!/usr/bin/env bash
# Quick start 1: set everything up and run the built-in demo (no camera, no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vicocam run "$@"
