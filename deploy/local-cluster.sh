#!/usr/bin/env bash
# A whole cluster on this machine, for trying cluster mode: nats-server (JetStream, a temporary store),
# one coordinator and N workers serving MODEL, all on loopback. Prints the command that submits a run;
# Ctrl-C stops everything.
#
#   deploy/local-cluster.sh [workers=2] [model=models/bundles/tiny-sd] [nats-port=4222]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
model=${2:-models/bundles/tiny-sd}
port=${3:-4222}
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$nats" ] || { echo "local-cluster: needs nats-server (Debian: apt-get install -y nats-server)" >&2; exit 1; }
[ -d dist ] || npm run build >/dev/null
store=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$store"; }
trap cleanup EXIT INT TERM

"$nats" -js -sd "$store" -a 127.0.0.1 -p "$port" >"$store/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "Server is ready" "$store/nats.log" 2>/dev/null && break; sleep 0.1; done
url="nats://127.0.0.1:$port"

node bin/evosearch.js coordinator --nats "$url" --listen 127.0.0.1:0 --runs-dir runs/served --log-level warn &
pids+=($!)
for i in $(seq "$workers"); do
  node bin/evosearch.js worker --nats "$url" --model "$model" --listen 127.0.0.1:0 --log-level warn &
  pids+=($!)
done
sleep 2
echo
echo "cluster up: NATS $url, 1 coordinator, $workers workers of $model. Submit a run with:"
echo "  npx evosearch run --cluster $url --model $model --prompt \"two red circles left of a blue square\" --out runs/cluster"
echo "Ctrl-C stops it."
wait
