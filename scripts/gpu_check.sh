#!/usr/bin/env bash
# GPU check of radclr's CUDA paths -- one short run (<= 8 min on one GPU), one JSON out.
#
#   bash scripts/gpu_check.sh [--device cuda|cpu] [--out gpu_check.json]
#
# On a GPU machine without a package index, carry .gpu_wheels/ (scripts/gpu_wheels.sh, run where PyPI is reachable)
# beside the checkout: the wheels are installed into .gpu_site/ first. The sections (scripts/gpu_check.py says what
# each measures), each under its own time limit and failing soft (its error goes into the JSON, the others run):
#   preflight        stops here, in one line, when torch has no CUDA (unless --device cpu) or a package is missing
#   numba_warm       the radiomics CPU kernels compiled (numba disk cache), in the background from the start
#   machine          radclr doctor --json
#   cuda_tests       pytest -m cuda
#   phantom          the shared phantom dataset (224 px)
#   throughput       resident batch vs the real loop (augmentation on/off, CUDA defaults), images/s, GPU utilisation
#   sync_audit       host syncs over 5 BYOP steps (torch.cuda.set_sync_debug_mode)
#   radiomics_boxes  8/32/64 varied boxes at 224 and 512 px: device vs CPU threads, parity
#   cam_boxes        cam_to_box_tensor on the device == on the CPU
#   full_run         configs/seed001/full.yaml on phantoms, >= 30 timed steps, SIGINT + --resume, predict, report
#   memory_512       peak memory at 512 px for growing batches
#   fp16             the fp16 GradScaler path (resident and one epoch of the loop)
#   ddp              torchrun, 2 processes: NCCL when >= 2 GPUs (gloo on the CPU in the dry mode)
# A section is skipped (recorded) when the whole check has used DEADLINE seconds (default 450).
# --device cpu is the dry mode: the same sections on the CPU at small sizes (checks the script, not the GPU).
set -u
cd "$(dirname "$0")/.."
DEVICE=cuda
OUT=gpu_check.json
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: bash scripts/gpu_check.sh [--device cuda|cpu] [--out FILE]" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
OUT_DIR="$(cd "$(dirname "$OUT")" && pwd)"
LOGS="$OUT_DIR/gpu_check_logs"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$LOGS" "$WORK/parts"
# the dry mode's limits x3: a shared 2-core machine (its timings mean nothing, only that every section runs)
SCALE=1; [ "$DEVICE" = cpu ] && SCALE=3
DEADLINE="${GPU_CHECK_DEADLINE:-$(( 450 * SCALE ))}"
START=$(date +%s)

# the wheels carried beside the checkout (a machine without a package index), installed once into .gpu_site/
export PYTHONPATH="$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_wheels ] && ! "$PY" -c "import monai, pydicom, yaml, tqdm, pytest" >/dev/null 2>&1; then
  PYTHON="$PY" bash scripts/gpu_wheels.sh --install >"$LOGS/wheels.log" 2>&1 \
    || { echo "gpu_check: installing .gpu_wheels failed (see $LOGS/wheels.log)" >&2; exit 3; }
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1

# preflight: one line and stop, rather than minutes of CPU "measurements" on a GPU machine
PRE=$("$PY" - "$DEVICE" 2>&1 <<'PYEOF'
import importlib.util, sys
missing = [m for m in ("torch", "numpy", "monai", "yaml", "pydicom", "tqdm", "pytest", "pandas", "scipy", "sklearn",
                       "matplotlib") if importlib.util.find_spec(m) is None]
if missing:
    print(f"missing packages: {', '.join(missing)} (run scripts/gpu_wheels.sh where PyPI is reachable, carry "
          ".gpu_wheels/)"); sys.exit(1)
import torch
if sys.argv[1].startswith("cuda") and not torch.cuda.is_available():
    print(f"torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build'}) "
          "sees no CUDA device: nothing to measure (install the CUDA torch; --device cpu for the dry run)")
    sys.exit(1)
print(f"torch {torch.__version__}, {torch.cuda.device_count()} CUDA device(s)")
PYEOF
)
PRE_RC=$?
echo "{\"preflight\": {\"ok\": $( [ $PRE_RC = 0 ] && echo true || echo false ), \"line\": $(printf '%s' "$PRE" \
  | tail -n 1 | "$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()))' 2>/dev/null || echo '""')}}" \
  >"$WORK/parts/preflight.json"
if [ $PRE_RC != 0 ]; then
  echo "gpu_check: $(printf '%s' "$PRE" | tail -n 1)" >&2
  cp "$WORK/parts/preflight.json" "$OUT"
  exit 3
fi
echo "[preflight] $PRE" >&2

section() {  # section NAME LIMIT CMD... : time limit, log, rc and seconds; skipped past the deadline
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local used=$(( $(date +%s) - START ))
  if [ "$used" -ge "$DEADLINE" ]; then
    echo "{\"$name\": {\"skipped\": \"the check had used ${used} s of its ${DEADLINE} s\"}}" >"$WORK/parts/$name.json"
    echo "[$name] skipped (deadline)" >&2
    return 0
  fi
  local left=$(( DEADLINE - used + 30 ))
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$(date +%s)
  timeout -s INT -k 10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "{\"step_$name\": {\"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"limit_s\": $limit, \"log\": \"gpu_check_logs/$name.log\"}}" \
    >"$WORK/parts/step_$name.json"
  echo "[$name] rc=$rc ($(( $(date +%s) - t0 )) s)" >&2
}
part() {  # part NAME LIMIT : a scripts/gpu_check.py section
  local name=$1 limit=$2
  section "$name" "$limit" "$PY" scripts/gpu_check.py "$name" --device "$DEVICE" --work "$WORK" --logs "$LOGS" \
    --part "$WORK/parts/$name.json" --budget $(( limit * SCALE ))
}

# numba compiles the radiomics kernels once for this checkout (disk cache) while the first sections run
"$PY" scripts/gpu_check.py numba_warm --device cpu --work "$WORK" --part "$WORK/parts/numba_warm.json" \
  >"$LOGS/numba_warm.log" 2>&1 &
WARM_PID=$!
section machine 30 sh -c "\"$PY\" -m radclr doctor --json >\"$WORK/doctor.json\" && \"$PY\" -c \
  'import json,sys; print(json.dumps({\"machine\": json.load(open(sys.argv[1]))}))' \"$WORK/doctor.json\" \
  >\"$WORK/parts/machine.json\""
section cuda_tests 45 "$PY" -m pytest -p no:cacheprovider -p no:xdist -q -m cuda tests --junitxml="$WORK/cuda_tests.xml"
[ -f "$WORK/cuda_tests.xml" ] && "$PY" scripts/gpu_check.py junit "$WORK/cuda_tests.xml" --part "$WORK/parts/cuda_tests.json"
part phantom 60
part throughput 60
part sync_audit 40
part radiomics_boxes 50
part cam_boxes 20
part full_run 150
part memory_512 20
part fp16 25
part ddp 60

wait "$WARM_PID" 2>/dev/null
echo "{\"total_seconds\": $(( $(date +%s) - START )), \"device_arg\": \"$DEVICE\", \"deadline_s\": $DEADLINE}" \
  >"$WORK/parts/total.json"
"$PY" scripts/gpu_check.py merge "$WORK"/parts/*.json --out "$OUT"
echo "wrote $OUT" >&2
