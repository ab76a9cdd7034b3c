#!/usr/bin/env bash
# The GPU check: set up vicocam with CUDA on a machine with an NVIDIA GPU, run the GPU
# doctor and the benchmarks on CUDA, and write every figure into one folder.
#
#   scripts/gpu-check.sh [--dry-run] [--with-tensorrt] [--skip-setup] [OUT_DIR]
#
#   OUT_DIR          where the JSON, the logs and summary.json go
#                    (default: benchmarks/results/gpu/<UTC time>)
#   --dry-run        print the steps and their time limits; install and run nothing
#   --with-tensorrt  also try 'pip install tensorrt-cuNN' (several GB); without it the
#                    TensorRT steps run only when TensorRT is already importable
#   --skip-setup     reuse the virtual environment of an earlier run as it is
#
# Needs: Linux, an NVIDIA driver (nvidia-smi), Python >= 3.11, the package index.
# Setup (first run: a few GB of wheels) has its own time limits; the checks after it
# share a budget of 8 minutes, each step under its own limit, and a step that fails or
# runs out of time is recorded and the next one runs. Exit code 0: every step passed.
# Environment: PYTHON (python3), VICOCAM_GPU_VENV (.venv-gpu), VICOCAM_TORCH_SPEC
# (torch==2.13.0: the PyPI wheel, CUDA-enabled on Linux), VICOCAM_GPU_DEVICE (cuda:0).
set -euo pipefail

CHECK_BUDGET_S=480
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DRY_RUN=0
WITH_TRT=0
SKIP_SETUP=0
OUT=""
PY="${PYTHON:-python3}"
VENV="${VICOCAM_GPU_VENV:-$ROOT/.venv-gpu}"
TORCH_SPEC="${VICOCAM_TORCH_SPEC:-torch==2.13.0}"
DEVICE="${VICOCAM_GPU_DEVICE:-cuda:0}"
HAVE_ORT_CUDA=0
HAVE_TRT=0
FAILED=0

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '==> %s\n' "$*"; }
die() { printf 'gpu-check: %s\n' "$*" >&2; exit 1; }

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      --with-tensorrt) WITH_TRT=1 ;;
      --skip-setup) SKIP_SETUP=1 ;;
      -h|--help) usage; exit 0 ;;
      -*) die "unknown option $1 (see --help)" ;;
      *) [[ -z "$OUT" ]] || die "give one output folder, not '$OUT' and '$1'"; OUT="$1" ;;
    esac
    shift
  done
  OUT="${OUT:-$ROOT/benchmarks/results/gpu/$(date -u +%Y%m%dT%H%M%SZ)}"
  [[ "$OUT" = /* ]] || OUT="$PWD/$OUT"
}

# ------------------------------------------------------------------ records

one_line() { local text="${*//$'\n'/; }"; printf '%s' "${text//$'\t'/ }"; }

record() {  # name status rc seconds log note command...
  local name="$1" status="$2" rc="$3" secs="$4" log="$5" note
  note="$(one_line "$6")"
  shift 6
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$log" "$note" \
    "$(one_line "$*")" >>"$OUT/.steps.tsv"
  printf '    %-22s %-8s %4ss  %s\n' "$name" "$status" "$secs" "$note"
  [[ "$status" == ok || "$status" == skipped || "$status" == partial ]] || FAILED=1
}

write_summary() {
  "$PY" - "$OUT" "$CHECK_BUDGET_S" <<'PYEOF'
import json, sys
from pathlib import Path
out, budget = Path(sys.argv[1]), int(sys.argv[2])
keys = ("name", "status", "rc", "seconds", "log", "note", "command")
rows = [dict(zip(keys, line.split("\t"))) for line in
        (out / ".steps.tsv").read_text().splitlines() if line]
for row in rows:
    row["rc"], row["seconds"] = int(row["rc"]), int(row["seconds"])
def named(*statuses):
    return [r["name"] for r in rows if r["status"] in statuses]
summary = {"check_budget_s": budget, "steps": rows, "failed": named("failed", "timeout"),
           "partial": named("partial"), "skipped": named("skipped")}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PYEOF
}

finish() {
  write_summary || echo "gpu-check: could not write summary.json" >&2
  if [[ $FAILED == 0 ]]; then
    say "all steps passed; results in $OUT"
  else
    say "some steps failed or ran out of time (see summary.json and their logs in $OUT)"
  fi
}

# ------------------------------------------------------------------ running steps

# run_step NAME LIMIT_S NOTE COMMAND...: run under a time limit, log, record; never fatal.
run_step() {
  local name="$1" limit="$2" note="$3" rc=0 start=$SECONDS
  shift 3
  local log="$OUT/$name.log"
  say "$name (limit ${limit} s): $(one_line "$*" | cut -c1-160)"
  timeout --kill-after=15s "${limit}s" "$@" >"$log" 2>&1 || rc=$?
  local status
  status="$(step_status "$rc" "$name")"
  case "$status" in
    timeout) note="ran past its ${limit} s limit; $note" ;;
    partial) note="exit $rc: TensorRT missing, the PyTorch figures are in its JSON; $note" ;;
    failed) note="exit $rc ($(tail -n 1 "$log" | cut -c1-120)); $note" ;;
  esac
  [[ $status == ok ]] || tail -n 20 "$log" | sed 's/^/      | /'
  record "$name" "$status" "$rc" "$((SECONDS - start))" "$name.log" "$note" "$@"
}

step_status() {  # rc name -> ok | partial | timeout | failed
  case "$1" in
    0) echo ok ;;
    124|137) echo timeout ;;
    2) if [[ $2 == doctor-gpu ]] && grep -q '"tensorrt_skipped"' "$OUT/doctor.json" 2>/dev/null
       then echo partial; else echo failed; fi ;;
    *) echo failed ;;
  esac
}

skip_step() {  # name why command...
  local name="$1" why="$2"
  shift 2
  say "$name: skipped ($why)"
  record "$name" skipped 0 0 "" "$why" "$@"
}

# check NAME LIMIT NOTE vicocam-args...: a check under the shared 8-minute budget.
check() {
  local name="$1" limit="$2" note="$3"
  shift 3
  local left=$((CHECK_BUDGET_S - (SECONDS - CHECKS_START)))
  if [[ $DRY_RUN == 1 ]]; then
    printf 'step %s timeout=%s: vicocam %s\n' "$name" "$limit" "$(printf '%q ' "$@")"
    PLANNED_S=$((PLANNED_S + limit))
    return
  fi
  if ((left < 20)); then
    skip_step "$name" "the 8-minute budget is spent" vicocam "$@"
    return
  fi
  ((limit <= left)) || limit=$left
  run_step "$name" "$limit" "$note" "$VENV/bin/vicocam" "$@"
}

# ------------------------------------------------------------------ setup

preflight() {
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
    || die "needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11"
  command -v timeout >/dev/null || die "needs the 'timeout' command (GNU coreutils)"
  command -v nvidia-smi >/dev/null \
    || fatal "no NVIDIA driver here (nvidia-smi not found): this check needs an NVIDIA GPU"
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 \
    || fatal "nvidia-smi failed (see $OUT/nvidia-smi.txt): is the NVIDIA driver loaded?"
}

pip_step() {  # name limit note pip-args...
  local name="$1" limit="$2" note="$3"
  shift 3
  run_step "$name" "$limit" "$note" "$VENV/bin/python" -m pip --disable-pip-version-check "$@"
}

setup() {
  say "setting up $VENV (first run: downloads a few GB)"
  [[ -x "$VENV/bin/python" ]] || run_step venv 120 "" "$PY" -m venv "$VENV"
  [[ -x "$VENV/bin/python" ]] || fatal "could not create the virtual environment $VENV"
  # shellcheck disable=SC2086  # the spec may carry pip options, e.g. --index-url
  pip_step install-torch 1500 "$TORCH_SPEC" install $TORCH_SPEC
  pip_step install-vicocam 900 "" install -e "$ROOT[webrtc]" \
    "onnxconverter-common>=1.14" "onnx-graphsurgeon>=0.5"
  # onnxruntime and onnxruntime-gpu install the same module: keep only the GPU one.
  pip_step remove-ort-cpu 120 "" uninstall -y onnxruntime
  pip_step install-ort-gpu 900 "" install onnxruntime-gpu
  [[ $WITH_TRT == 0 ]] || pip_step install-tensorrt 1500 "optional" install \
    "tensorrt-cu$(cuda_major)>=10.12,<11"
}

cuda_major() { "$VENV/bin/python" -c 'import torch; print((torch.version.cuda or "12").split(".")[0])'; }

fatal() {
  record fatal failed 1 0 "" "$*" ""
  finish
  die "$*"
}

probe_torch() {
  local code='import torch, sys
print(torch.__version__, "CUDA build", torch.version.cuda, "available", torch.cuda.is_available())
sys.exit(0 if torch.cuda.is_available() else 1)'
  run_step probe-torch-cuda 120 "" "$VENV/bin/python" -c "$code"
  grep -q "available True" "$OUT/probe-torch-cuda.log" || fatal "torch sees no CUDA GPU \
(see probe-torch-cuda.log): the wheel is CPU-only or the driver is older than its CUDA; set \
VICOCAM_TORCH_SPEC, e.g. 'torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126'"
}

probe_ort() {
  local code='import sys, torch, onnxruntime as ort
from onnx import TensorProto, helper
torch.zeros(1, device="cuda")  # CUDA libraries in the process first, as vicocam does
value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [value("x")], [value("y")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
getattr(ort, "preload_dlls", lambda: None)()
session = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
print("onnxruntime", ort.__version__, "providers", session.get_providers())
sys.exit(0 if session.get_providers()[0] == "CUDAExecutionProvider" else 1)'
  run_step probe-ort-cuda 120 "decides the onnxruntime steps" "$VENV/bin/python" -c "$code"
  grep -q "'CUDAExecutionProvider'" "$OUT/probe-ort-cuda.log" && HAVE_ORT_CUDA=1 || true
}

probe_trt() {
  if "$VENV/bin/python" -c 'import tensorrt' >/dev/null 2>&1; then
    HAVE_TRT=1
    record probe-tensorrt ok 0 0 "" "importable: the TensorRT steps run" "import tensorrt"
  else
    record probe-tensorrt skipped 0 0 "" "not importable (--with-tensorrt tries to install \
it): the TensorRT steps are skipped" "import tensorrt"
  fi
}

environment() {
  "$VENV/bin/python" - "$OUT/environment.json" <<'PYEOF' || true
import json, platform, sys
from pathlib import Path
import torch
info = {"python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
for name in ("onnxruntime", "tensorrt"):
    try:
        info[name] = __import__(name).__version__
    except Exception as exc:
        info[name] = f"not importable: {exc}"
Path(sys.argv[1]).write_text(json.dumps(info, indent=2) + "\n")
PYEOF
}

# ------------------------------------------------------------------ the checks

checks() {
  local ort_why="ONNX Runtime's CUDA provider did not load (see probe-ort-cuda.log)"
  local trt_why="TensorRT is not importable"
  local fast=torch
  CHECKS_START=$SECONDS
  PLANNED_S=0
  [[ $HAVE_TRT == 0 ]] || fast=tensorrt
  check doctor-gpu 120 "TensorRT self-test, or the PyTorch engines without TensorRT" \
    doctor --gpu --device "$DEVICE" --json "$OUT/doctor.json"
  check bench-live-torch 45 "PyTorch FP32 on CUDA" bench live --backend torch \
    --device "$DEVICE" --seconds 15 --json "$OUT/bench-live-torch.json"
  maybe "$HAVE_ORT_CUDA" "$ort_why" bench-live-onnxruntime 45 "ONNX Runtime CUDA provider" \
    bench live --backend onnxruntime --device "$DEVICE" --seconds 15 \
    --json "$OUT/bench-live-onnxruntime.json"
  maybe "$HAVE_TRT" "$trt_why" bench-live-tensorrt 80 "TensorRT FP16 (plans built first)" \
    bench live --backend tensorrt --device "$DEVICE" --seconds 15 \
    --json "$OUT/bench-live-tensorrt.json"
  check "bench-sessions-$fast" 130 "sessions on $fast, batched and unbatched" bench sessions \
    --backend "$fast" --device "$DEVICE" --max-sessions 8 --seconds 4 \
    --json "$OUT/bench-sessions-$fast.json"
  check bench-model 60 "CPU figures: params, GFLOPs, CPU ms (no GPU path)" bench model \
    --seconds 20 --json "$OUT/bench-model.json"
}

maybe() {  # have why name limit note args...: a check that needs something probed first
  local have="$1" why="$2"
  shift 2
  if [[ $DRY_RUN == 1 || $have == 1 ]]; then
    check "$@"
  else
    skip_step "$1" "$why" vicocam "${@:4}"
  fi
}

dry_run() {
  echo "gpu-check dry run: nothing is installed or run"
  echo "output folder: $OUT"
  echo "virtual environment: $VENV (python: $PY)"
  echo "setup: $PY -m venv; pip install $TORCH_SPEC; pip install -e '.[webrtc]'" \
       "onnxconverter-common onnx-graphsurgeon; pip uninstall onnxruntime;" \
       "pip install onnxruntime-gpu$([[ $WITH_TRT == 1 ]] && echo '; pip install tensorrt-cuNN>=10.12,<11')"
  echo "probes: torch sees CUDA (else stop), ONNX Runtime's CUDA provider loads, tensorrt imports"
  checks
  echo "checks: their limits add up to ${PLANNED_S} s with every optional step;" \
       "budget ${CHECK_BUDGET_S} s"
  echo "(onnxruntime steps run only when its CUDA provider loads, tensorrt steps only when" \
       "TensorRT imports)"
}

main() {
  parse_args "$@"
  if [[ $DRY_RUN == 1 ]]; then
    dry_run
    return
  fi
  mkdir -p "$OUT"
  : >"$OUT/.steps.tsv"
  exec > >(tee -a "$OUT/gpu-check.log") 2>&1
  say "vicocam GPU check, $(date -u +%FT%TZ), results in $OUT"
  cd "$ROOT"
  preflight
  [[ $SKIP_SETUP == 1 ]] || setup
  probe_torch
  probe_ort
  probe_trt
  environment
  checks
  finish
  return "$FAILED"
}

main "$@"
