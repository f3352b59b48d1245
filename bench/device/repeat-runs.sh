#!/usr/bin/env bash
# Is a CUDA run's answer a function of its inputs? On the GPU machine, from the project root with the
# .stage pieces staged and dist carried (bench/device/README.md):
#   bash bench/device/repeat-runs.sh [alone|together]
# alone: three embedded runs one after another per bundle (fresh processes); together: two at once on
# the one GPU; threads: one run each on 1, 2 and 4 worker threads of one process (--workers N). Each prints one JSON line per run: the best reward and hashes of the selection decisions
# and of every candidate's reward, to compare. The stand-in bundle comes from multi-gpu-cuda.sh's
# standin-bundle phase.
source bench/device/cuda-setup.sh 2>/dev/null
mode=${1:-alone}
one_run() { # bundle rows run [workers]
  local b=$1 rows=$2 i=$3 w=${4:-1} d=/tmp/rep-$3-$RANDOM p="two red circles left of a blue square"
  case $b in *video*) p="a blue square and a green triangle moving up" ;; esac
  cuda_env timeout 100 $node bin/evosearch.js run --model "$b" --prompt "$p" --budget-nfe 250 --providers cuda --call-rows "$rows" --workers "$w" --no-progress --out "$d" > "$d.log" 2>&1 || tail -3 "$d.log"
  $node bench/device/record-summary.mjs "$d" "model=$b" "mode=$mode" "run=$i" "workers=$w"
}
# BUNDLES: bundle:rows pairs to run instead of the default three; ROWS: one --call-rows for them all.
for m in ${BUNDLES:-/tmp/multi-gpu/tiny-sd-sd21:8 models/bundles/tiny-video:32 models/bundles/tiny-sd:32}; do
  b=${m%%:*}; rows=${ROWS:-${m##*:}}
  if [ "$mode" = threads ]; then
    for w in 1 2 4; do one_run "$b" "$rows" "$w" "$w"; done
  elif [ "$mode" = together ]; then
    for i in 1 2; do one_run "$b" "$rows" "$i" & done; wait
  else
    for i in 1 2 3; do one_run "$b" "$rows" "$i"; done
  fi
done
