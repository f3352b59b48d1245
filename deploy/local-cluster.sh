#!/usr/bin/env bash
# A whole cluster on this machine, secured as a real one: a CA and certificates (evosearch certs), a
# NATS server with JetStream and a user per kind of process (docs/cluster-security.md's configuration,
# passwords made here), a cluster key for the checkpoints, a coordinator and two workers over mutual
# TLS, then one run submitted by a client certificate. Everything it starts is stopped when it ends
# (or on Ctrl-C).
#
#   deploy/local-cluster.sh [--dir DIR] [--budget-nfe N] [--model SPEC] [--keep]
#
# DIR (default ./local-cluster) holds certs/, the NATS configuration and passwords (nats.conf,
# nats-passwords), cluster.key, nats/, runs/ (the coordinator's) and demo/ (the client's copy of the run). --keep leaves the cluster running until Ctrl-C. Needs nats-server (Debian:
# apt-get install nats-server) and the repository after `npm ci`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EVOSEARCH=(node "$ROOT/bin/evosearch.js")
DIR=local-cluster
BUDGET=5000
MODEL=analytic:gmm
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --budget-nfe) BUDGET="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "local-cluster.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
NATS_SERVER="$(command -v nats-server || true)"
[ -z "$NATS_SERVER" ] && [ -x /usr/sbin/nats-server ] && NATS_SERVER=/usr/sbin/nats-server
if [ -z "$NATS_SERVER" ]; then echo "local-cluster.sh: nats-server not found (Debian: apt-get install nats-server)" >&2; exit 3; fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
CERTS="$DIR/certs"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# 1. Certificates: a CA, a coordinator, two workers and a client (made once; reused after).
if [ ! -f "$CERTS/alice.crt" ]; then
  "${EVOSEARCH[@]}" certs --out "$CERTS" --coordinator coord --worker worker-1 --worker worker-2 --client alice
fi
tls() { echo --tls-ca "$CERTS/ca.crt" --tls-cert "$CERTS/$1.crt" --tls-key "$CERTS/$1.key"; }

# 2. NATS with JetStream on a free loopback port: the documented account, a password per user (made
#    once, kept readable by this user only), and a key that seals the checkpoints.
sed -n '/<!-- evosearch-nats-config: begin -->/,/<!-- evosearch-nats-config: end -->/p' "$ROOT/docs/cluster-security.md" | sed '1,2d;$d' | sed '$d' >"$DIR/nats.conf"
umask 077
if [ ! -f "$DIR/nats-passwords" ]; then
  for user in WORKER COORDINATOR CLIENT; do echo "EVOSEARCH_${user}_PASSWORD=$(node -e "process.stdout.write('p' + require('crypto').randomBytes(18).toString('hex'))")"; done >"$DIR/nats-passwords"
fi
[ -f "$DIR/cluster.key" ] || node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))" >"$DIR/cluster.key"
umask 022
set -a; . "$DIR/nats-passwords"; set +a
# Port -1: nats-server picks a free one itself and logs it (a port picked here could be taken before it binds).
"$NATS_SERVER" -c "$DIR/nats.conf" -js -sd "$DIR/nats" -a 127.0.0.1 -p -1 >"$DIR/nats.log" 2>&1 &
PIDS+=($!)
# JetStream's start-up takes seconds on a loaded machine: wait for its line (20 s at most), and say so if not.
NATS_PORT=""
for _ in $(seq 200); do
  NATS_PORT="$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/nats.log" | head -1)"
  [ -n "$NATS_PORT" ] && break
  sleep 0.1
done
if [ -z "$NATS_PORT" ]; then echo "local-cluster.sh: nats-server did not listen within 20 s; its log:" >&2; cat "$DIR/nats.log" >&2; exit 3; fi
NATS_URL="nats://127.0.0.1:$NATS_PORT"
as() { # runs "$@" as NATS user $1 (its password through the environment, never a flag), in place of a subshell
  local user="$1"; shift
  local var="EVOSEARCH_$(echo "$user" | tr a-z A-Z)_PASSWORD"
  ( export EVOSEARCH_NATS_USER="$user" EVOSEARCH_NATS_PASSWORD="${!var}"; exec "$@" )
}

# 3. A coordinator and two workers; each prints {"event":"listening",...} once it serves.
started() { # name, NATS user, then the command: waits for its listening line
  local name="$1" user="$2"; shift 2
  local var="EVOSEARCH_$(echo "$user" | tr a-z A-Z)_PASSWORD"
  # exec: the PID kept is the process's own, so the cleanup stops it.
  ( export EVOSEARCH_NATS_USER="$user" EVOSEARCH_NATS_PASSWORD="${!var}"; exec "$@" ) >"$DIR/$name.out" 2>"$DIR/$name.log" &
  PIDS+=($!)
  for _ in $(seq 300); do grep -q '"listening"' "$DIR/$name.out" 2>/dev/null && { echo "$name: $(head -1 "$DIR/$name.out")"; return; }; sleep 0.1; done
  echo "local-cluster.sh: $name did not start; its log:" >&2; cat "$DIR/$name.log" >&2; exit 3
}
# shellcheck disable=SC2046
started coordinator coordinator "${EVOSEARCH[@]}" coordinator --nats "$NATS_URL" --listen 127.0.0.1:0 --runs-dir "$DIR/runs" --cluster-key "$DIR/cluster.key" $(tls coord)
for w in 1 2; do
  # shellcheck disable=SC2046
  started "worker-$w" worker "${EVOSEARCH[@]}" worker --model "$MODEL" --nats "$NATS_URL" --listen 127.0.0.1:0 $(tls "worker-$w")
done

# 4. A run, submitted with the client's certificate; its folder comes back to $DIR/demo.
rm -rf "$DIR/demo"
# shellcheck disable=SC2046
as client "${EVOSEARCH[@]}" run --cluster "$NATS_URL" --model "$MODEL" --budget-nfe "$BUDGET" --seed 1 --no-progress --out "$DIR/demo" --cluster-key "$DIR/cluster.key" $(tls alice)
echo "the run's files: $DIR/demo (record.json, report.html)"
if [ "$KEEP" = 1 ]; then
  echo "cluster running: NATS $NATS_URL (user client, its password in $DIR/nats-passwords); client flags: --cluster-key $DIR/cluster.key $(tls alice); Ctrl-C stops it"
  wait
fi
