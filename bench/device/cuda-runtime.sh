#!/usr/bin/env bash
# The CUDA runtime benchmark on the GPU machine (bench/reports/cuda-runtime/README.md), in phases that
# each fit one device call. From the project root there, with .stage pieces staged (cuda-setup.sh),
# dist and .device/debs carried:
#   bash bench/device/cuda-runtime.sh PHASE...
# Phases:
#   errors     what a user sees when the CUDA provider is missing, when a CUDA library is missing, and
#              with a CPU fallback; then installs the provider with `evosearch install-cuda`
#   options    does each CUDA provider option take effect (bench/cuda-options.ts on probe graphs)
#   bundles    the bundles through the worker runtime (bench/gpu-runtime.ts --bundle) on CUDA
#   e2e        one EvoSearch run end to end (tiny-sd 20k, tiny-video 7.2k NFEs) on CUDA and WebGPU
#   e2e-cpu    the same on the CPU (16 cores)
#   methods    the three methods at equal NFEs on CUDA (tiny-sd, METHOD_BUDGETS, default 1000 NFEs)
#   methods-call-rows  the same with every model call N rows (--call-rows N, N from CALL_ROWS, default 8 16 32 64)
#   e2e-call-rows  the CUDA end-to-end runs with --call-rows N (N from CALL_ROWS, default 16 64)
#   workers    1, 2 and 4 worker processes on the one GPU over gRPC (bench/multi-gpu.ts --use-gpus 0)
#   workers-call-rows  the same with every model call N rows (CALL_ROWS, default 16): are the decisions then the 1-worker run's?
#   standin-export    the SD-2.1-sized stand-in's fp32 and fp16 ONNX graphs (models/scripts/sd21_unet_standin.py)
#   standin-torch     the same network in PyTorch fp32/TF32/fp16 (the physical reference)
#   standin-optimize  onnxruntime's transformer optimizer on it (models/scripts/optimize_for_cuda.py), NCHW
#   standin-optimize-nhwc  the same with NHWC convolutions
#   standin-ort[:g,…] the stand-in's graphs on CUDA (fp16, optimized fp16 (NCHW, NHWC), fp32 with and without TF32)
#   standin-compare   the fp16 and optimized fp16 graphs' outputs against the fp32 graph's (compare-graphs.mjs)
# Writes under $OUT: host.txt and one file per phase (.jsonl/.md/.txt).
set -uo pipefail
source bench/device/cuda-setup.sh
work=/tmp/cuda-runtime; mkdir -p "$work"
[ -f "$out/host.txt" ] || { date -u; nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader; nproc; $node --version; python3 -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime (python)", onnxruntime.__version__)'; } > "$out/host.txt" 2>&1

phase_errors() {
  local f="$out/errors.txt" run=(bin/evosearch.js run --model models/bundles/tiny-sd --prompt "a red circle" --budget-nfe 100 --no-progress)
  {
    echo "== --providers cuda, provider libraries not installed"; $node "${run[@]}" --providers cuda --out "$work/err-1" 2>&1 | tail -5; echo "exit ${PIPESTATUS[0]}"
    echo "== install-cuda --check before installing"; $node bin/evosearch.js install-cuda --check 2>&1; echo "exit $?"
    echo "== install-cuda from the staged npm package"; $node bin/evosearch.js install-cuda --source "$stage/gpu.tgz" 2>&1; echo "exit $?"
    echo "== install-cuda again (already installed)"; $node bin/evosearch.js install-cuda --source "$stage/gpu.tgz" 2>&1; echo "exit $?"
    echo "== --providers cuda, installed, CUDA libraries not on the library path"; $node "${run[@]}" --providers cuda --out "$work/err-2" 2>&1 | tail -5; echo "exit ${PIPESTATUS[0]}"
    echo "== --providers cuda,cpu, the same"; $node "${run[@]}" --providers cuda,cpu --out "$work/err-3" 2>&1 | tail -5; echo "exit ${PIPESTATUS[0]}"
    echo "== install-cuda --check with CUDA_LIBS on LD_LIBRARY_PATH"; cuda_env $node bin/evosearch.js install-cuda --check 2>&1; echo "exit $?"
    echo "== --providers cuda, everything in place"; cuda_env $node "${run[@]}" --providers cuda --out "$work/err-4" 2>&1 | tail -5; echo "exit ${PIPESTATUS[0]}"
    $node -e "const r=require('$work/err-4/record.json'); console.log(JSON.stringify(r.workers))"
  } > "$f" 2>&1
  cat "$f"
  # If the install step is not in this build, put the libraries in place by hand so later phases run.
  local bin=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
  if [ ! -f "$bin/libonnxruntime_providers_cuda.so" ]; then
    echo "(install-cuda did not install: copying by hand)"; tar -xzf "$stage/gpu.tgz" -C "$work" && cp "$work"/package/Plugins/Linux/x64/libonnxruntime_providers_{shared,cuda}.so "$bin/"
  fi
}

phase_options() {
  python3 models/scripts/cuda_probe_graphs.py "$work/probe" >/dev/null
  local f="$out/options.jsonl"; : > "$f"
  for args in "--label matmul-default" "--label matmul-no-tf32 --no-tf32" "--label matmul-limit-32MiB --memory-limit 32MiB" "--label matmul-limit-1GiB --memory-limit 1GiB" "--label matmul-device-1 --device 1"; do
    cuda_env timeout 60 $node dist/bench/cuda-options.js --graph "$work/probe/matmul.onnx" $args >> "$f" 2>&1
  done
  for algo in exhaustive heuristic default; do
    cuda_env timeout 60 $node dist/bench/cuda-options.js --graph "$work/probe/conv.onnx" --label "conv-$algo" --conv-algo $algo >> "$f" 2>&1
  done
  cuda_env timeout 60 $node dist/bench/cuda-options.js --graph "$work/probe/conv.onnx" --label conv-unset >> "$f" 2>&1
  # The same probes with the options as environment only (TF32) for comparison.
  NVIDIA_TF32_OVERRIDE=0 cuda_env timeout 60 $node dist/bench/cuda-options.js --graph "$work/probe/matmul.onnx" --label matmul-env-tf32-0 >> "$f" 2>&1
  # Compute-bound: 275 GFLOP against 16 MiB copied, so TF32 on or off shows in the median.
  cuda_env timeout 60 $node dist/bench/cuda-options.js --graph "$work/probe/chain.onnx" --label chain-default >> "$f" 2>&1
  cuda_env timeout 60 $node dist/bench/cuda-options.js --graph "$work/probe/chain.onnx" --label chain-no-tf32 --no-tf32 >> "$f" 2>&1
  cat "$f"
}

phase_bundles() {
  local extra=("$@")
  cuda_env timeout 120 $node dist/bench/gpu-runtime.js --bundle models/bundles/tiny-sd --bundle models/bundles/tiny-video --providers cuda --batches 1,16,64 --repeats 2 --results "$out/bundles${SUFFIX:-}.jsonl" "${extra[@]}" 2>&1 | tail -n 20 | tee "$out/bundles${SUFFIX:-}.md"
}

e2e_run() { # model budget provider prompt...   (E2E_FLAGS: more run flags)
  local m=$1 b=$2 p=$3; shift 3
  local flags=(${E2E_FLAGS:-})
  local dir="$work/e2e-$m-$p${SUFFIX:-}"; rm -rf "$dir"
  local workers=(); [ "$p" = cpu ] && workers=(--workers 2)
  cuda_env timeout 200 $node bin/evosearch.js run --model "models/bundles/$m" --prompt "$*" --budget-nfe "$b" --providers "$p" "${workers[@]}" "${flags[@]}" --no-progress --out "$dir" > "$work/e2e.log" 2>&1 || tail -c 600 "$work/e2e.log"
  $node bench/device/record-summary.mjs "$dir" "model=$m" "provider=$p" "suffix=${SUFFIX:-}" "flags=${E2E_FLAGS:-}" 2>&1 | tee -a "$out/e2e.jsonl"
}

phase_e2e() {
  for p in cuda webgpu; do
    e2e_run tiny-sd 20000 $p two red circles left of a blue square
    e2e_run tiny-video 7200 $p a blue square and a green triangle moving up
  done
}

phase_e2e_call_rows() {
  for rows in ${CALL_ROWS:-16 64}; do
    SUFFIX=-rows$rows E2E_FLAGS="--call-rows $rows" e2e_run tiny-sd 20000 cuda two red circles left of a blue square
    SUFFIX=-rows$rows E2E_FLAGS="--call-rows $rows" e2e_run tiny-video 7200 cuda a blue square and a green triangle moving up
  done
}

phase_e2e_cpu() {
  e2e_run tiny-sd 20000 cpu two red circles left of a blue square
  e2e_run tiny-video 7200 cpu a blue square and a green triangle moving up
}

phase_methods() { # extra run flags...
  local tag=${SUFFIX:-default}
  for b in ${METHOD_BUDGETS:-1000}; do for m in evosearch best-of-n particles; do
    local dir="$work/m-$m-$b-$tag"; rm -rf "$dir"
    cuda_env timeout 100 $node bin/evosearch.js run --model models/bundles/tiny-sd --prompt "two red circles left of a blue square" --method $m --budget-nfe $b --providers cuda --no-progress --out "$dir" "$@" > "$work/m.log" 2>&1 || tail -c 400 "$work/m.log"
    $node bench/device/record-summary.mjs "$dir" "method=$m" "budget=$b" "flags=$*" | tee -a "$out/methods.jsonl"
  done; done
}

phase_workers() { # extra multi-gpu.js flags...
  cuda_env timeout 500 $node dist/bench/multi-gpu.js --gpus 1,2,4 --use-gpus 0 --providers cuda --threads 2 --models tiny-sd,tiny-video --budget tiny-sd=20000 --budget tiny-video=7200 --repeats 2 --no-kill --results "$out/workers${SUFFIX:-}.jsonl" "$@" 2>&1 | tail -n 30 | tee "$out/workers${SUFFIX:-}.md"
}

phase_standin_export() {
  [ -f "$work/sd21/fp16/model.onnx" ] || PYTHONUNBUFFERED=1 timeout 400 python3 models/scripts/sd21_unet_standin.py export "$work/sd21" 2>&1 | grep -v -i warning | tail -4
}

phase_standin_torch() {
  PYTHONUNBUFFERED=1 timeout 200 python3 models/scripts/sd21_unet_standin.py torch-bench "$out/pytorch-sd21.json" --batches 1,2,4,8 2>&1 | tail -12
}

phase_standin_optimize() {
  [ -f "$work/sd21/opt-fp16/model.onnx" ] || PYTHONUNBUFFERED=1 timeout 400 python3 models/scripts/optimize_for_cuda.py "$work/sd21/fp32/model.onnx" "$work/sd21/opt-fp16/model.onnx" 2>&1 | tail -3 | tee -a "$out/optimizer.txt"
  du -sh "$work"/sd21/*/
}

phase_standin_optimize_nhwc() {
  [ -f "$work/sd21/opt-nhwc-fp16/model.onnx" ] || PYTHONUNBUFFERED=1 timeout 400 python3 models/scripts/optimize_for_cuda.py "$work/sd21/fp32/model.onnx" "$work/sd21/opt-nhwc-fp16/model.onnx" --nhwc 2>&1 | tail -3 | tee -a "$out/optimizer.txt"
  du -sh "$work"/sd21/*/
}

phase_standin_ort() {
  local graphs=("$@"); [ ${#graphs[@]} -gt 0 ] || graphs=(fp16 opt-fp16 opt-nhwc-fp16 fp32)
  for g in "${graphs[@]}"; do
    [ -f "$work/sd21/$g/model.onnx" ] || { echo "no $g graph"; continue; }
    cuda_env timeout 240 $node dist/bench/gpu-runtime.js --graph "sd21-$g=$work/sd21/$g/model.onnx" --graph-batches 1,2,4,8 --repeats 5 --providers cuda --results "$out/standin.jsonl" 2>&1 | tail -n 6 | tee -a "$out/standin.md"
  done
  if printf '%s\n' "${graphs[@]}" | grep -qx fp32; then
    NVIDIA_TF32_OVERRIDE=0 cuda_env timeout 240 $node dist/bench/gpu-runtime.js --graph "sd21-fp32-no-tf32=$work/sd21/fp32/model.onnx" --graph-batches 1,2,4,8 --repeats 5 --providers cuda --results "$out/standin.jsonl" 2>&1 | tail -n 6 | tee -a "$out/standin.md"
  fi
}

phase_standin_compare() {
  for g in fp16 opt-fp16; do
    [ -f "$work/sd21/$g/model.onnx" ] && cuda_env timeout 120 $node bench/device/compare-graphs.mjs "$work/sd21/fp32/model.onnx" "$work/sd21/$g/model.onnx" 2 2>/dev/null | tee -a "$out/standin-compare.jsonl"
  done
}

for phase in "$@"; do
  echo "=== $phase ($(date -u +%T))"
  case "$phase" in
    errors) phase_errors ;; options) phase_options ;; bundles) phase_bundles ;; bundles-no-ahead) SUFFIX=-no-ahead phase_bundles --no-noise-ahead ;;
    e2e) phase_e2e ;; e2e-cpu) phase_e2e_cpu ;; methods) phase_methods ;; methods-call-rows) for rows in ${CALL_ROWS:-8 16 32 64}; do SUFFIX=rows$rows phase_methods --call-rows $rows; done ;; e2e-call-rows) phase_e2e_call_rows ;; workers) phase_workers ;; workers-call-rows) SUFFIX=-rows${CALL_ROWS:-16} phase_workers --call-rows ${CALL_ROWS:-16} ;;
    standin-export) phase_standin_export ;; standin-torch) phase_standin_torch ;; standin-optimize) phase_standin_optimize ;; standin-optimize-nhwc) phase_standin_optimize_nhwc ;; standin-ort) phase_standin_ort ;; standin-compare) phase_standin_compare ;; standin-ort:*) IFS=, read -ra gs <<< "${phase#standin-ort:}"; phase_standin_ort "${gs[@]}" ;;
    *) echo "unknown phase '$phase'" >&2 ;;
  esac
done
echo "=== done ($(date -u +%T))"
