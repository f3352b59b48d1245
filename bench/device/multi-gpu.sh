#!/usr/bin/env bash
# The multi-GPU benchmark on the GPU machine, in one command (run there from the project root, with
# .device and dist carried; see ../shared/device/README.md and bench/README.md):
#   bash bench/device/multi-gpu.sh [gpus=1,2,4] [extra flags for dist/bench/multi-gpu.js...]
# Writes $OUT/multi-gpu.md (the tables), $OUT/multi-gpu.jsonl (one line per run) and $OUT/host.txt.
set -euo pipefail
source .device/setup.sh
out=${OUT:-runs/device}; mkdir -p "$out"
# nats-server travels xz-compressed in .device (put it there with: xz -9 -c "$(command -v nats-server)" > .device/nats-server.xz)
if ! command -v nats-server >/dev/null; then xz -dc .device/nats-server.xz > /usr/local/bin/nats-server && chmod +x /usr/local/bin/nats-server; fi
gpus=${1:-1,2,4}; shift || true
{ date -u; nvidia-smi -L; nvidia-smi topo -m || true; nproc; node --version; nats-server --version; } > "$out/host.txt" 2>&1
cat "$out/host.txt"
node dist/bench/multi-gpu.js --gpus "$gpus" --results "$out/multi-gpu.jsonl" "$@" | tee -a "$out/multi-gpu.md"
