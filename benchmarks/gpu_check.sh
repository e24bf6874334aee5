#!/usr/bin/env bash
# One check for a lent GPU machine, under 8 minutes on an H100/H200: what no CPU test can see.
#   1. `make test-gpu`: the tests/gpu value checks (slowdown monotone and on the model's GPU,
#      energy finite > 0, peak memory vs weights, wall latency = prefill + decode within 5 %,
#      gpu_uuid under CUDA_VISIBLE_DEVICES, no stress worker outliving a SIGKILLed sweep).
#   2. A no-weights llava-1.5-7b paired sweep at contention 0 and 0.5 (fp16, 8 samples).
#   3. The GPU contention calibration table (compute, levels 0 / 0.5 / 1.0).
# Every number goes to one file: $OUT/gpu_check.txt when $OUT is set, else results/gpu_check.txt.
# Exit status: non-zero when any step failed (the file still holds what ran).
set -uo pipefail
cd "$(dirname "$0")/.."

DEST="${OUT:-results}"
mkdir -p "$DEST"
REPORT="$DEST/gpu_check.txt"
: >"$REPORT"
export CUDA_MODULE_LOADING="${CUDA_MODULE_LOADING:-EAGER}" ADABENCH_IMAGE_BACKEND=pil

# The Python that sees CUDA: the .venv's when its torch has it, else the system one.
PY=
for p in .venv/bin/python python3; do
  if command -v "$p" >/dev/null 2>&1 &&
     "$p" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    PY=$p; break
  fi
done
if [ -z "$PY" ]; then
  echo "gpu_check: no Python here sees CUDA" | tee -a "$REPORT" >&2
  exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ADABENCH=("$PY" -c "from adabench.cli import run; run()")

section() { printf '\n== %s\n' "$*" | tee -a "$REPORT"; }
status=0

section "card"
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.total,mig.mode.current \
    --format=csv,noheader 2>&1
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__)"
  echo "python $PY · CUDA_MODULE_LOADING=$CUDA_MODULE_LOADING"
} 2>&1 | tee -a "$REPORT"

section "make test-gpu"
timeout 300 make test-gpu PYTHON="$PY" VPY="$PY" PYTEST_ADDOPTS="-rA -s" 2>&1 \
  | grep -E "passed|failed|PASSED|FAILED|SKIPPED|ERROR|slowdown|wall |CUDA_VISIBLE|samples=|Error" \
  | tee -a "$REPORT"
[ "${PIPESTATUS[0]}" -eq 0 ] || { status=1; echo "make test-gpu FAILED" | tee -a "$REPORT"; }

section "no-weights llava-1.5-7b, paired, contention 0 / 0.5"
SWEEP_OUT=$(mktemp -d)
timeout 150 "${ADABENCH[@]}" sweep --models llava-1.5-7b --no-weights \
  --methods full,layer-drop,adallava-l --budgets 0.5,1.0 --contention 0,0.5 --limit 8 \
  --repeats 2 --warmup 2 --max-new-tokens 8 --device cuda --dtype float16 \
  --out "$SWEEP_OUT" --name gpu-check --no-report --json >"$SWEEP_OUT/cells.json" 2>"$SWEEP_OUT/log.txt"
rc=$?
if [ $rc -ne 0 ]; then
  status=1
  { echo "sweep FAILED (exit $rc)"; tail -5 "$SWEEP_OUT/log.txt"; } | tee -a "$REPORT"
else
  "$PY" - "$SWEEP_OUT/cells.json" <<'EOF' | tee -a "$REPORT"
import json, sys
cells = json.load(open(sys.argv[1]))
keys = ["contention", "method", "budget", "latency_ms_mean", "latency_ratio", "achieved_slowdown",
        "peak_mem_mb", "energy_j_mean", "mps_active", "throttled", "sm_clock_mhz", "gpu_uuid"]
print("\t".join(keys))
for c in sorted(cells, key=lambda c: (c["contention"], c["method"], c["budget"])):
    print("\t".join(f"{c.get(k):.4g}" if isinstance(c.get(k), float) else str(c.get(k)) for k in keys))
EOF
fi

section "calibration (compute on cuda)"
timeout 90 "${ADABENCH[@]}" contention calibrate --device cuda --kind compute \
  --levels 0,0.5,1.0 --repeats 6 2>&1 | tee -a "$REPORT"
[ "${PIPESTATUS[0]}" -eq 0 ] || { status=1; echo "calibration FAILED" | tee -a "$REPORT"; }

section "exit $status"
echo "numbers in $REPORT"
exit $status
