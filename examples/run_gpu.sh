#!/usr/bin/env bash
# The full-budget runs that a CPU cannot finish, sized for about 10 minutes on one GPU (an
# H100-class card), most important first; each stage writes its table as it finishes:
#
#   1. Buechel et al. 2022, Table 1 (examples/buechel2022/config_gpu.yaml): all training data,
#      10 attack steps in training, all 10,000 test images, seeds 0, 1, 2 (one process each,
#      side by side on the GPU): standard, forward noise, adversarial, both, AMP, dropout, AWP.
#   2. Hou et al. 2024 on a BatchNorm ResNet-20 (examples/hou2024/fashion_resnet20_bn.yaml):
#      forward noise against consistency on all training data, 8 epochs of batch 128, 3 seeds.
#   3. WVAT on a VGG-5 (examples/hou2024/fashion_vgg_wvat.yaml): SGD, forward noise, WVAT at rho
#      0.1 and 0.02 on all training data, 3 seeds; the degradation ratio to SGD's.
#
# usage, from anywhere:
#   examples/run_gpu.sh [--budget SECONDS] [--out DIR]    on a CUDA GPU (default 570 s in all)
#   examples/run_gpu.sh --smoke [--out DIR]                tiny budget on the CPU, seeds 0 and 1
#                                                          one after the other: checks the script
# Each stage runs under a share of the budget (52 / 27 / 21 %); a stage that runs out is stopped
# and its table shows the jobs that finished ("-" for the rest); run the script again with the
# same --out to continue (every compare runs with --resume). Tables: DIR/<stage>.md, the
# examples' READMEs' form. The GPU sizes are estimates from CPU step costs, not measured on a GPU.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
smoke=0
budget=570
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --budget) budget="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "error: unknown argument $1 (use --smoke, --budget SECONDS, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || { [ "$smoke" = 1 ] && out=runs/gpu-smoke || out=runs/gpu; }
case "$budget" in ''|*[!0-9]*) echo "error: --budget takes whole seconds, got $budget" >&2; exit 2 ;; esac
mkdir -p "$out"
PATH="$root/.venv/bin:$PATH"
export OMP_NUM_THREADS=1

if [ "$smoke" = 1 ]; then
  device=cpu
  seeds=(0 1)
  buechel=(--set dataset.max_train=400 --set dataset.max_test=100 --set train.epochs=1
    --set train.steps_per_epoch=2 --set 'train.milestones=[]' --set transfers=3
    --set attack.transfers=2 --set attack.n_steps=2 --set landscape.repeats=1
    --set landscape.examples=50)
  small=(--set dataset.max_train=200 --set dataset.max_test=50 --set train.epochs=1
    --set train.steps_per_epoch=2 --set transfers=3)
  hou=("${small[@]}")
  wvat=("${small[@]}")
else
  device=cuda
  seeds=(0 1 2)
  buechel=()
  hou=(--set dataset.max_train=null --set dataset.max_test=null --set train.epochs=8
    --set train.batch_size=128 --set transfers=100)
  wvat=(--set dataset.max_train=null --set dataset.max_test=null --set transfers=100)
fi
hou+=(--set 'methods=[{name: noise_injection, level: 0.2}, consistency]')
wvat+=(--set 'methods=[standard, {name: noise_injection, level: 0.5},
  {name: wvat, p: 0.5, rho: 0.1, ascent: layer},
  {name: wvat, label: wvat-rho0.02, p: 0.5, rho: 0.02, ascent: layer}]')

# stage NAME SECONDS CONFIG ARGS...: one compare per seed into $out/NAME/seedS, its output in
# $out/NAME/seedS.log (side by side on the GPU, one after the other in --smoke), each stopped
# after SECONDS.
stage() {
  local name="$1" seconds="$2" config="$3"
  shift 3
  local start pids=()
  start=$(date +%s)
  for seed in "${seeds[@]}"; do
    local cmd=(noiseproof compare --config "$config" --seed "$seed" --device "$device"
      --out "$out/$name/seed$seed" --resume --no-progress -q "$@")
    local log="$out/$name/seed$seed.log"
    mkdir -p "$out/$name"
    if [ "$smoke" = 1 ]; then
      "${cmd[@]}" > "$log" 2>&1 || { tail -5 "$log"; return 1; }
    else
      timeout -s INT -k 20 "$seconds" "${cmd[@]}" > "$log" 2>&1 &
      pids+=($!)
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || echo "$name: a seed stopped early (rc $?)"; done
  echo "$name: wall time $(( $(date +%s) - start )) s"
}

# table NAME COMMAND...: the table of a stage, on the terminal and in $out/NAME.md
table() {
  local name="$1"
  shift
  { echo "<!-- $(date -u +%F) examples/run_gpu.sh $([ "$smoke" = 1 ] && echo --smoke) -->"
    "$@"; } | tee "$out/$name.md" || echo "$name: no table (no finished job)"
}

stage buechel2022 $(( budget * 52 / 100 )) examples/buechel2022/config_gpu.yaml "${buechel[@]}"
table buechel2022 python examples/buechel2022/table.py "$out"/buechel2022/seed*

stage hou2024-resnet20 $(( budget * 27 / 100 )) examples/hou2024/fashion_resnet20_bn.yaml "${hou[@]}"
table hou2024-resnet20 python examples/hou2024/summarize.py "$out"/hou2024-resnet20/seed*

stage hou2024-wvat $(( budget * 21 / 100 )) examples/hou2024/fashion_vgg_wvat.yaml "${wvat[@]}"
table hou2024-wvat python examples/hou2024/degradation.py "$out"/hou2024-wvat/seed*
