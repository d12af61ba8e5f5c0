#!/usr/bin/env bash
# A bench.pretrain_sweep grid on a GPU machine, as one prepared run:  GRID=gpu|finetune bench/gpu_sweep.sh
# Needs the 64 px store and splits (data/preprocessed, data/splits). The "gpu" grid also makes 96 and
# 128 px stores, the "finetune" grid a 64 px store of phantoms at contrast 1.5, from freshly generated
# phantoms (same params and seed otherwise). Results go to $OUT (or /tmp/sweep).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/sweep}
GRID=${GRID:-gpu}
PY=${PYTHON:-python3}
T=/tmp/cxr
mkdir -p "$OUT" $T
nvidia-smi -L || true
$PY -c "import torch, torchvision, sklearn, pandas, cv2; print('torch', torch.__version__, 'pandas', pandas.__version__)"

make_store() {  # name size contrast
  $PY - "$1" "$2" "$3" "$T" <<'PYEOF'
import sys, yaml
name, size, contrast, root = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
params = yaml.safe_load(open("params.yaml"))
params["phantoms"]["contrast"] = contrast
params["data"]["root"] = f"{root}/phantoms-{contrast}/CheXpert-v1.0-small"
params["preprocess"]["size"] = size
yaml.safe_dump(params, open(f"{root}/params-{name}.yaml", "w"))
PYEOF
  [ -d "$T/phantoms-$3" ] || $PY -m stages.phantoms "$T/phantoms-$3/CheXpert-v1.0-small" --params "$T/params-$1.yaml"
  $PY -m stages.preprocess "$T/pre-$1" "$T/pre-$1.json" --params "$T/params-$1.yaml"
  $PY -m stages.split "$T/pre-$1/index.csv" "$T/split-$1" "$T/split-$1.json" --params "$T/params-$1.yaml"
}

if [ "$GRID" = gpu ]; then
  make_store 96 96 1.0; make_store 128 128 1.0
  DATA=(--data 96=$T/pre-96:$T/split-96 --data 128=$T/pre-128:$T/split-128)
else
  make_store c15 64 1.5
  DATA=(--data c15=$T/pre-c15:$T/split-c15)
fi
$PY -m bench.pretrain_sweep "$GRID" "${DATA[@]}" --budget-s "${BUDGET_S:-420}" --out "$OUT/sweep.jsonl" 2>&1 \
  | grep -v "epoch [0-9]" | tee "$OUT/sweep.log"
cp bench/results.json "$OUT/results.json"
