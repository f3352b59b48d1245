# The search-quality grid on the GPU machine's 16 CPU cores (onnxruntime on the CPU: these tiny models
# are bound by per-call overhead, not arithmetic). The tree (about 35 MB) and .device/ (about 47 MB)
# do not fit one call's 64 MiB, so .device/node.xz and .device/node_modules.tar.xz travel first, one
# per call, each staged with `mkdir -p /tmp/stage && cp .device/*.xz /tmp/stage/`; this script runs in
# the next call (carry dist, .device/setup.sh, .device/debs) while the machine is still warm.
# Each shard appends one JSON line per search to $OUT/grid.jsonl.shard<i>; what a shard finished
# before the time limit comes back even when the call is cut short.
set -e
mkdir -p .device && cp -n /tmp/stage/node.xz /tmp/stage/node_modules.tar.xz .device/
source .device/setup.sh
timeout ${SECONDS_LIMIT:-440} node dist/bench/search-quality.js measure --study grid --sweep none \
  --image-prompts ${IMAGE_PROMPTS:-16} --video-prompts ${VIDEO_PROMPTS:-10} \
  --image-budgets 250,500,1000,2500,5000 --video-budgets 100,200,300,600,900 \
  --threads 1 --parallel 16 --results $OUT/grid.jsonl 2> $OUT/progress.txt || echo "measure exited with $?"
nproc; lscpu | grep 'Model name'
# One file back: a call returns at most 8 files (the shards are there only when the time limit cut it short).
cat $OUT/grid.jsonl* > $OUT/grid-all.jsonl 2>/dev/null || true; rm -f $OUT/grid.jsonl $OUT/grid.jsonl.shard*; wc -l $OUT/grid-all.jsonl
