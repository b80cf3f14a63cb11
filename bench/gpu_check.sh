#!/usr/bin/env bash
# The one prepared GPU check (issue 15): PLLaVA-7B shapes with random weights, 4-bit nf4 and bf16,
# through our loader and engine and beside transformers' generate(); the CUDA tests. About 5 minutes
# on an H100/H200; every stage has its own time limit and the whole run stops by 8 minutes.
#
#   bash bench/gpu_check.sh OUTDIR                 # on the GPU machine
#   bash bench/gpu_check.sh OUTDIR --dry-run       # on CPU at 1/16 scale: proves the script, numbers mean nothing
#   bash bench/gpu_check.sh OUTDIR --dry-run --scale 0.03125 --quick   # the smallest, fastest dry run
#
# OUTDIR gets six files (a lent machine returns at most eight): gpu_check.log (every stage's output),
# stages.tsv, tests.xml (pytest junit), 4bit.json, bf16.json, summary.md (all tables; printed last).
# Wheels in .whl/ (bitsandbytes; transformers too if wanted) are installed offline first, into a
# target folder put on PYTHONPATH; frames are synthetic, so PyAV is not needed. See bench/README.md.
set -u

usage() { echo "usage: bash bench/gpu_check.sh OUTDIR [--dry-run] [--scale S] [--quick]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUTDIR=$1; shift
DRY=0; SCALE=""; QUICK=0
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --scale) [ $# -ge 2 ] || usage; SCALE=$2; shift ;;
    --quick) QUICK=1 ;;
    *) usage ;;
  esac
  shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG=$OUTDIR/gpu_check.log
STAGES=$OUTDIR/stages.tsv
: > "$LOG"
printf 'stage\tstatus\trc\tseconds\tlimit\n' > "$STAGES"

export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
TMPROOT=${TMPDIR:-/tmp}

if [ $DRY = 1 ]; then
  DEVICE=cpu; SCALE=${SCALE:-0.0625}; BUDGET=${GPU_CHECK_BUDGET:-2400}; SLOW=4  # CPU: stage limits x4
else
  DEVICE=cuda; SCALE=${SCALE:-1}; BUDGET=${GPU_CHECK_BUDGET:-470}; SLOW=1
fi
MEASURE=(--device "$DEVICE" --scale "$SCALE")
[ $QUICK = 1 ] && MEASURE+=(--tokens 4 --repeats 1 --configs 1 --concurrency 1 2 --concurrency-tokens 2 --chapters 2)
CKPT=${PLLAVA_CKPT:-$TMPROOT/pllava7b-random-scale$SCALE}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
RESERVE=30  # seconds kept for the summary

# stage NAME LIMIT CMD...: run CMD under its own time limit (cut to what the budget has left),
# append its output to the log, record status, exit code and seconds.
stage() {
  local name=$1 limit=$(($2 * SLOW)) rc status t0 secs left
  shift 2
  left=$((DEADLINE - $(date +%s) - RESERVE))
  [ "$name" = summary ] && left=$((left + RESERVE))
  if [ $left -lt 5 ]; then
    printf '%s\tSKIPPED (out of time)\t-\t0\t%s\n' "$name" "$limit" >> "$STAGES"
    echo "[gpu_check] $name: skipped, the ${BUDGET}s budget is spent"
    return
  fi
  [ $limit -gt $left ] && limit=$left
  printf '\n===== %s (limit %ss) %s\n' "$name" "$limit" "$*" >> "$LOG"
  t0=$(date +%s.%N)
  timeout --kill-after=15 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124|137) status="TIMED OUT" ;;
    *) status=failed ;;
  esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$limit" >> "$STAGES"
  echo "[gpu_check] $name: $status (rc $rc, ${secs}s of ${limit}s)"
}

env_report() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); dry run: $DRY; scale: $SCALE; python: $PY"
  if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    SITE=$TMPROOT/pllava-site
    echo "installing offline: $(ls .whl/*.whl | xargs -n1 basename | tr '\n' ' ')"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || return 1
  fi
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.mem --format=csv
  "$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("torch", "transformers", "bitsandbytes", "accelerate", "safetensors", "tokenizers", "huggingface_hub", "av", "pytest"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '?')} {m.__file__}")
    except Exception as e:  # absent is a fact to report, not a failure
        print(f"{name}: not importable ({type(e).__name__}: {e})")
import torch
print("cuda available:", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
}

# The wheels go on PYTHONPATH for every later stage (set here, in this shell, not in the stage).
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
  export PYTHONPATH=$TMPROOT/pllava-site${PYTHONPATH:+:$PYTHONPATH}
fi
export -f env_report
export PY DRY SCALE TMPROOT

echo "[gpu_check] out: $OUTDIR; device: $DEVICE; scale: $SCALE; budget: ${BUDGET}s; python: $PY"
stage env 90 bash -c env_report
stage tests 150 "$PY" -m pytest -q -p no:cacheprovider -rA --durations=5 tests/test_cuda_oom.py tests/test_cuda_4bit.py \
  --junitxml "$OUTDIR/tests.xml"
stage write 150 "$PY" bench/bench_gpu.py write --dir "$CKPT" --device "$DEVICE" --scale "$SCALE"
stage measure-4bit 160 "$PY" bench/bench_gpu.py measure --dir "$CKPT" --quant 4bit "${MEASURE[@]}" --json "$OUTDIR/4bit.json"
stage measure-bf16 160 "$PY" bench/bench_gpu.py measure --dir "$CKPT" --quant none --official "${MEASURE[@]}" \
  --json "$OUTDIR/bf16.json"
# The summary's own row cannot be in the table it prints; its status is in the log and on stdout.
stage summary 30 "$PY" bench/bench_gpu.py summary "$OUTDIR/4bit.json" "$OUTDIR/bf16.json" --stages "$STAGES" \
  --junit "$OUTDIR/tests.xml" --md "$OUTDIR/summary.md"
[ -z "${PLLAVA_CKPT:-}" ] && [ $DRY = 0 ] && rm -rf "$CKPT"  # 14.5 GB; a dry run's few MB are re-used
echo "[gpu_check] done in $(( $(date +%s) - START ))s"
echo
cat "$OUTDIR/summary.md" 2>/dev/null || { echo "no summary; the end of the log:"; tail -n 60 "$LOG"; }
