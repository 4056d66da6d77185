#!/usr/bin/env bash
# GPU check of radclr's CUDA paths -- one short run (<= 8 min on one GPU), one JSON out.
#
#   bash scripts/gpu_check.sh [--device cuda|cpu] [--out gpu_check.json]
#
# 1. the CUDA-marked tests (pytest -m cuda);
# 2. the radiomics engine on the GPU vs the CPU fast path: speed and parity on the same 256 real 224x224 NIH
#    regions (synthetic textures when ../shared/data is absent);
# 3. supervised vs BYOP training at 224 px (ResNet-18, phantoms, BYOP loop with radiomics every step, on the
#    GPU): train_time_s per epoch from RUN/metrics.csv and their ratio (target <= 1.10; 2 epochs, the last one
#    counts: CUDA/cuDNN warm-up falls in the first);
# 4. DDP: the BYOP run again with torchrun on 2 GPUs, when nvidia-smi lists 2 or more.
# --device cpu is the dry mode: the same steps on the CPU with small sizes (checks the script, not the GPU).
# Every step's log is kept next to the JSON (gpu_check_logs/); a failing step is recorded and the rest still run.
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
LOGS="$(dirname "$OUT")/gpu_check_logs"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE
START=$(date +%s)

if [ "$DEVICE" = cpu ]; then  # dry mode: small everything
  RAD_N=16; RAD_SIZE=64; TRAIN_N=64; TRAIN_SIZE=64; BATCH=16
else
  RAD_N=256; RAD_SIZE=224; TRAIN_N=512; TRAIN_SIZE=224; BATCH=64
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  NGPU=$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)
  GPU_NAMES=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tr '\n' ';')
else
  NGPU=0; GPU_NAMES=""
fi
[ "$DEVICE" = cpu ] && NGPU_DDP=2 || NGPU_DDP=$NGPU

step() {  # step NAME SECONDS CMD... : run with a time limit, log, record rc and seconds
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "{\"step_$name\": {\"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"log\": \"gpu_check_logs/$name.log\"}}" \
    >"$WORK/step_$name.json"
  echo "[$name] rc=$rc ($(( $(date +%s) - t0 )) s)" >&2
  return $rc
}

# 0. the machine
"$PY" - >"$WORK/machine.json" <<PYEOF
import json, os, torch
print(json.dumps({"machine": {"device": "$DEVICE", "n_gpus_nvidia_smi": $NGPU, "gpus": "$GPU_NAMES",
      "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
      "cpu_count": os.cpu_count(), "date": __import__("time").strftime("%Y-%m-%dT%H:%M:%S%z")}}))
PYEOF

# 1. CUDA-marked tests (they skip without a GPU)
step cuda_tests 120 "$PY" -m pytest -m cuda tests -p no:cacheprovider --junitxml="$WORK/cuda_tests.xml"
"$PY" scripts/gpu_check.py junit "$WORK/cuda_tests.xml" >"$WORK/cuda_tests.json" 2>>"$LOGS/cuda_tests.log"

# 2. radiomics engine on the device vs the CPU fast path
step radiomics 120 "$PY" scripts/gpu_check.py radiomics --device "$DEVICE" --n "$RAD_N" --size "$RAD_SIZE" \
  && tail -n 1 "$LOGS/radiomics.log" >"$WORK/radiomics.json"

# 3. one (two) epoch(s) supervised vs BYOP at 224 px
"$PY" scripts/gpu_check.py configs "$WORK/configs" --device "$DEVICE" --n "$TRAIN_N" --size "$TRAIN_SIZE" \
  --batch "$BATCH" >/dev/null
for METHOD in supervised byop; do
  step "train_$METHOD" 100 "$PY" -m radclr train "$WORK/configs/$METHOD.yaml" --out "$WORK/runs/$METHOD" \
    --no-progress --no-eval
done
"$PY" scripts/gpu_check.py epochs "$WORK/runs/supervised" "$WORK/runs/byop" >"$WORK/epochs.json" 2>>"$LOGS/epochs.log"

# 4. DDP on 2 GPUs (2 CPU processes, gloo, in the dry mode)
if [ "$NGPU_DDP" -ge 2 ]; then
  step ddp_byop 120 "$PY" -m torch.distributed.run --nproc_per_node=2 --standalone -m radclr train \
    "$WORK/configs/byop.yaml" --out "$WORK/runs/byop_ddp" --no-progress --no-eval \
    && "$PY" - "$WORK/runs/byop_ddp" >"$WORK/ddp.json" <<'PYEOF'
import json, sys, pandas as pd
m = pd.read_csv(sys.argv[1] + "/metrics.csv")
print(json.dumps({"ddp": {"processes": 2, "train_time_s": [float(x) for x in m["train_time_s"]]}}))
PYEOF
else
  echo '{"ddp": {"skipped": "fewer than 2 GPUs"}}' >"$WORK/ddp.json"
fi

echo "{\"total_seconds\": $(( $(date +%s) - START ))}" >"$WORK/total.json"
"$PY" scripts/gpu_check.py merge "$WORK"/machine.json "$WORK"/step_*.json "$WORK"/cuda_tests.json \
  "$WORK"/radiomics.json "$WORK"/epochs.json "$WORK"/ddp.json "$WORK"/total.json --out "$OUT"
echo "wrote $OUT" >&2
