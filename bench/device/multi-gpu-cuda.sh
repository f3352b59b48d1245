#!/usr/bin/env bash
# The multi-GPU benchmark on CUDA (bench/multi-gpu.ts), in phases that each fit one device call. From the
# project root there, with the .stage pieces staged (cuda-setup.sh) and dist carried:
#   bash bench/device/multi-gpu-cuda.sh PHASE...
# Environment: GPUS (worker counts, default 1,2,4), USE_GPUS (the GPUs they go on round-robin, default
# all the host has; on a one-GPU host every worker shares GPU 0).
# Phases:
#   setup           the CUDA provider installed with `evosearch install-cuda` (the product's own step)
#   standin-bundle  tiny-sd with the SD-2.1-sized stand-in grafted into its U-Net, fp16 on the GPU
#                   (models/scripts/make_standin_bundle.py): the model with real work per call
#   small           tiny-sd at 20,000 NFEs and tiny-video at 7,200, 2 repeats, one worker killed mid-run
#   heavy           the stand-in bundle at 2,500 NFEs (calls of 8 rows), 1 repeat, one worker killed mid-run
# Writes under $OUT: host.txt and one .md (the tables) and .jsonl (one line per run) per phase: few,
# flat files, since a call returns at most 8.
set -uo pipefail
source bench/device/cuda-setup.sh
work=/tmp/multi-gpu; mkdir -p "$work"
gpus=${GPUS:-1,2,4}
use=(); [ -n "${USE_GPUS:-}" ] && use=(--use-gpus "$USE_GPUS")
{ date -u; nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader; nvidia-smi topo -m 2>/dev/null; nproc; $node --version; nats-server --version; } > "$out/host.txt" 2>&1

phase_setup() {
  { cuda_env $node bin/evosearch.js install-cuda --source "$stage/gpu.tgz"; echo "exit $?"; cuda_env $node bin/evosearch.js install-cuda --check; echo "exit $?"; } 2>&1 | tail -n 12 | tee "$out/setup.txt"
}

phase_standin_bundle() {
  rm -rf "$work/tiny-sd-sd21.partial"; [ -f "$work/tiny-sd-sd21/unet/model.onnx.data" ] || { rm -rf "$work/tiny-sd-sd21";  PYTHONUNBUFFERED=1 timeout 400 python3 models/scripts/make_standin_bundle.py models/bundles/tiny-sd "$work/tiny-sd-sd21" 2>&1 | grep -v -i warn | tail -n 6 | tee "$out/standin-bundle.txt"; }
  # One run through the product on one GPU: does the graft load on CUDA, and what does a call cost.
  local dir="$work/standin-one"; rm -rf "$dir"
  cuda_env timeout 200 $node bin/evosearch.js run --model "$work/tiny-sd-sd21" --prompt "two red circles left of a blue square" --budget-nfe 250 --providers cuda --call-rows 8 --no-progress --out "$dir" 2>&1 | tail -n 3 | tee -a "$out/standin-bundle.txt"
  $node bench/device/record-summary.mjs "$dir" 2>&1 | tee -a "$out/standin-bundle.txt"
}

phase_small() {
  cuda_env timeout 560 $node dist/bench/multi-gpu.js --gpus "$gpus" "${use[@]}" --providers cuda --threads 2 --models tiny-sd,tiny-video --budget tiny-sd=20000 --budget tiny-video=7200 --repeats 2 --results "$out/small.jsonl" 2>&1 | tail -n 40 | tee "$out/small.md"
}

phase_heavy() {
  cuda_env timeout 560 $node dist/bench/multi-gpu.js --gpus "$gpus" "${use[@]}" --providers cuda --threads 1 --models "tiny-sd-sd21=$work/tiny-sd-sd21" --budget "tiny-sd-sd21=${HEAVY_BUDGET:-2500}" --call-rows "${HEAVY_ROWS:-8}" --repeats 1 --results "$out/heavy${SUFFIX:-}.jsonl" 2>&1 | tail -n 40 | tee "$out/heavy${SUFFIX:-}.md"
}

for phase in "$@"; do
  echo "=== $phase ($(date -u +%T))"
  case "$phase" in
    setup) phase_setup ;; standin-bundle) phase_standin_bundle ;; small) phase_small ;; heavy) phase_heavy ;;
    *) echo "unknown phase '$phase'" >&2 ;;
  esac
done
echo "=== done ($(date -u +%T))"
