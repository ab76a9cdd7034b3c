#!/usr/bin/env bash
# Install what the real-browser WebRTC test needs: Debian's Chromium and the
# playwright driver for Python, into the current virtual environment.
#
# Idempotent: apt runs only when /usr/bin/chromium is missing, pip only when
# playwright is not importable. Never runs `playwright install`: the browser
# comes from Debian, and the test passes its path to playwright.
#
# Usage (from the repository root, as root or with sudo available):
#     scripts/install-browser.sh            # uses .venv/bin/python if present
#     PYTHON=/path/to/python scripts/install-browser.sh
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    python="$VIRTUAL_ENV/bin/python"
elif [[ -x .venv/bin/python ]]; then
    python=.venv/bin/python
else
    python=python3
fi

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
else
    sudo=(sudo)
fi

if [[ -x "$CHROMIUM" ]]; then
    echo "chromium: already installed at $CHROMIUM"
else
    echo "chromium: installing with apt-get"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y chromium
fi

if "$python" -c "import playwright" 2>/dev/null; then
    echo "playwright: already installed for $python"
else
    echo "playwright: installing into $python's environment"
    "$python" -m pip install playwright
fi

echo "browser test ready: chromium at $CHROMIUM, playwright for $python"
