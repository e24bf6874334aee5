#!/usr/bin/env bash
# One check for a lent GPU machine, within 7 minutes (step timeouts below sum to <= 420 s):
# what no CPU test can see.
#   0. preflight: the Python that sees CUDA has every module adabench needs
#      (adabench.measure.preflight names each missing one and exits 1).
#   1. tests/gpu (marker gpu), raw log teed unbuffered to $DEST/pytest.log so a timeout still
#      leaves it; the CUDA_VISIBLE_DEVICES-by-UUID test is deselected under MIG.
#   2. A no-weights llava-1.5-7b paired sweep, eager decode, contention 0 and 0.5 (fp16).
#   3. The same at contention 0 with --cuda-graphs: tokens must equal the eager run's, and the
#      decode time and GPU-busy fraction (gpu_busy_fraction, launch_bound) are compared.
#   4. The GPU contention calibration (compute, levels 0 / 0.5 / 1.0).
# Every number goes to one file, $DEST/gpu_check.jsonl (one JSON object a line, each with a
# "step"); $DEST is $OUT when set, else results/gpu_check. The sweeps' results folders stay in
# $DEST/sweeps/. Exit status: non-zero when any step failed (the file still holds what ran).
set -uo pipefail
cd "$(dirname "$0")/.."

# step timeouts in seconds (tests/unit/test_gpu_check_script.py: they sum to <= 420)
T_PREFLIGHT=15
T_PYTEST=170
T_SWEEP=95
T_GRAPHS=75
T_CALIBRATE=45
T_SUMMARY=20

DEST="${OUT:-results/gpu_check}"
mkdir -p "$DEST/sweeps"
JSONL="$DEST/gpu_check.jsonl"
: >"$JSONL"
export PYTHONUNBUFFERED=1 COLUMNS=250
status=0

note() {  # note STEP KEY VALUE...: one JSON line (values as strings) to the file and stdout
  local step=$1; shift
  python3 - "$step" "$@" <<'EOF' | tee -a "$JSONL"
import json, sys
step, rest = sys.argv[1], sys.argv[2:]
print(json.dumps({"step": step, **dict(zip(rest[::2], rest[1::2]))}))
EOF
}

# The Python that sees CUDA: the .venv's when its torch has it, else the system one.
PY=
for p in .venv/bin/python python3; do
  if command -v "$p" >/dev/null 2>&1 &&
     "$p" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    PY=$p; break
  fi
done
if [ -z "$PY" ]; then
  note card error "no Python here sees CUDA"
  exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ADABENCH=("$PY" -c "from adabench.cli import run; run()")

MIG=$(nvidia-smi --query-gpu=mig.mode.current --format=csv,noheader 2>/dev/null | head -1)
case "${CUDA_VISIBLE_DEVICES:-}" in MIG-*) MIG=Enabled ;; esac
note card date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" python "$PY" mig "$MIG" \
  gpu "$(nvidia-smi --query-gpu=name,uuid,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)" \
  versions "$("$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)" 2>&1)"

echo "== 0. preflight" >&2
out=$(timeout "$T_PREFLIGHT" "$PY" -m adabench.measure.preflight 2>&1)
rc=$?
note preflight rc "$rc" output "$out"
if [ $rc -ne 0 ]; then
  echo "gpu_check: the modules above are missing; nothing else can run" >&2
  exit 1
fi

echo "== 1. tests/gpu (raw log: $DEST/pytest.log)" >&2
DESELECT=()
if [ "$MIG" = "Enabled" ]; then  # the test skips itself under MIG too (NVML's MIG mode)
  DESELECT=(--deselect tests/gpu/test_measure_gpu.py::test_gpu_uuid_is_right_when_cuda_visible_devices_names_a_uuid)
  note pytest skipped test_gpu_uuid_is_right_when_cuda_visible_devices_names_a_uuid reason "MIG mode"
fi
timeout "$T_PYTEST" stdbuf -oL -eL "$PY" -u -m pytest -rA -s -m gpu tests/gpu \
  -p no:cacheprovider ${DESELECT[@]+"${DESELECT[@]}"} 2>&1 | tee "$DEST/pytest.log" >&2
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || status=1
grep -E "^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) " "$DEST/pytest.log" | while read -r outcome test rest; do
  note pytest outcome "$outcome" test "$test" detail "$rest" >/dev/null
done
note pytest rc "$rc" summary "$(tail -1 "$DEST/pytest.log")"

SWEEP=(sweep --models llava-1.5-7b --no-weights --methods full,layer-drop,adallava-l
       --budgets 0.5,1.0 --limit 6 --repeats 2 --warmup 2 --max-new-tokens 8 --device cuda
       --dtype float16 --out "$DEST/sweeps" --no-report --json)

echo "== 2. no-weights llava-1.5-7b, eager decode, contention 0 / 0.5" >&2
timeout "$T_SWEEP" "${ADABENCH[@]}" "${SWEEP[@]}" --contention 0,0.5 --name eager \
  >"$DEST/sweeps/eager.json" 2>"$DEST/sweeps/eager.log"
rc=$?
note sweep_eager rc "$rc" log_tail "$(tail -3 "$DEST/sweeps/eager.log")"
[ $rc -eq 0 ] || status=1

echo "== 3. the same with --cuda-graphs, contention 0" >&2
timeout "$T_GRAPHS" "${ADABENCH[@]}" "${SWEEP[@]}" --contention 0 --name graphs --cuda-graphs \
  >"$DEST/sweeps/graphs.json" 2>"$DEST/sweeps/graphs.log"
rc=$?
note sweep_graphs rc "$rc" log_tail "$(tail -3 "$DEST/sweeps/graphs.log")"
[ $rc -eq 0 ] || status=1

echo "== 4. calibration (compute on cuda)" >&2
timeout "$T_CALIBRATE" "${ADABENCH[@]}" contention calibrate --device cuda --kind compute \
  --levels 0,0.5,1.0 --repeats 6 --json >"$DEST/calibration.json" 2>"$DEST/calibration.log"
rc=$?
note calibration rc "$rc" log_tail "$(tail -3 "$DEST/calibration.log")"
[ $rc -eq 0 ] || status=1

echo "== 5. numbers" >&2
timeout "$T_SUMMARY" "$PY" benchmarks/gpu_check_summary.py "$DEST" >>"$JSONL"
rc=$?
[ $rc -eq 0 ] || status=1
cat "$JSONL"
note exit status "$status" file "$JSONL"
exit $status
