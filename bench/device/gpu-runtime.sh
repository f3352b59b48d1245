#!/usr/bin/env bash
# The GPU runtime benchmark on the GPU machine, in one command (from the project root there, with .device
# and dist carried; see ../shared/device/README.md and bench/README.md):
#   bash bench/device/gpu-runtime.sh
# 1. exports the SD-2.1-sized U-Net stand-in (fp32 and fp16) and times it and the bundles' denoisers in
#    PyTorch (fp32, TF32, fp16);
# 2. makes fp16 copies of the shipped bundles' denoisers (float32 inputs and outputs kept);
# 3. times the worker runtime on WebGPU over the bundles (fp32 and fp16), their denoiser graphs alone, and
#    the stand-in's graphs;
# 4. runs the same EvoSearch search end to end on WebGPU and on the CPU.
# Writes under $OUT: host.txt, pytorch.json, pytorch-bundles.json, gpu-runtime.jsonl/.md, bundle-graphs.jsonl,
# e2e.jsonl.
set -uo pipefail
source .device/setup.sh
out=${OUT:-runs/device}; mkdir -p "$out"
work=/tmp/gpu-runtime; mkdir -p "$work"
{ date -u; nvidia-smi -L; nproc; node --version; python3 -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime (python)", onnxruntime.__version__)'; } > "$out/host.txt" 2>&1
cat "$out/host.txt"

echo "== stand-in export and PyTorch reference"
[ -f "$work/sd21/fp16/model.onnx" ] || timeout 240 python3 models/scripts/sd21_unet_standin.py export "$work/sd21" 2>&1 | grep -v Warning | tail -5
timeout 120 python3 models/scripts/sd21_unet_standin.py torch-bench "$out/pytorch.json" --batches 1,2,4,8 2>&1 | tail -12

timeout 90 python3 models/scripts/bundle_torch_bench.py "$out/pytorch-bundles.json" --batches 1,4,16,64 2>&1 | tail -3

echo "== fp16 denoisers"
for bundle in tiny-sd tiny-flux tiny-video; do
  rm -rf "$work/$bundle-fp16"; python3 models/scripts/denoiser_to_fp16.py "models/bundles/$bundle" "$work/$bundle-fp16"
done

echo "== worker runtime on the bundles"
bundles=(); for b in tiny-sd tiny-flux tiny-video; do bundles+=(--bundle "models/bundles/$b" --bundle "$work/$b-fp16"); done
timeout 150 node dist/bench/gpu-runtime.js "${bundles[@]}" --batches 1,4,16,64 --results "$out/gpu-runtime.jsonl" 2>/dev/null | tail -n +4 | tee "$out/gpu-runtime.md"

echo "== the bundles' denoiser graphs alone"
timeout 90 node dist/bench/gpu-runtime.js --graph tiny-sd=models/bundles/tiny-sd/unet/model.onnx --graph tiny-flux=models/bundles/tiny-flux/transformer/model.onnx --graph tiny-video=models/bundles/tiny-video/transformer/model.onnx --graph-batches 1,4,16,64 --repeats 5 --results "$out/bundle-graphs.jsonl" 2>/dev/null | tail -n 12 | tee -a "$out/gpu-runtime.md"

echo "== end to end: the same EvoSearch run on WebGPU (one thread: one GPU device per process) and on the CPU"
for spec in "tiny-sd 20000 two red circles left of a blue square" "tiny-video 7200 a blue square and a green triangle moving up"; do
  set -- $spec; m=$1; b=$2; shift 2; prompt="$*"
  for p in webgpu cpu; do
    timeout 120 node bin/evosearch.js run --model "models/bundles/$m" --prompt "$prompt" --budget-nfe "$b" --providers $p --no-progress --out "$work/e2e-$m-$p" > "$work/e2e.log" 2>&1 || tail -c 400 "$work/e2e.log"
    node bench/device/record-summary.mjs "$work/e2e-$m-$p" "model=$m" "provider=$p" | tee -a "$out/e2e.jsonl"
  done
done

echo "== the stand-in's graphs on WebGPU"
timeout 200 node dist/bench/gpu-runtime.js --graph "sd21-fp16=$work/sd21/fp16/model.onnx" --graph "sd21-fp32=$work/sd21/fp32/model.onnx" --graph-batches 1,2,4,8 --repeats 3 --results "$out/gpu-runtime.jsonl" 2>&1 | tail -n 12 | tee -a "$out/gpu-runtime.md"
