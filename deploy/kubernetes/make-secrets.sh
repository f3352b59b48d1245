#!/usr/bin/env bash
# Makes everything secret that the manifests mount, on a trusted machine, and writes it as Secret
# manifests to apply with kubectl. Nothing here is committed: the folder is ignored by git.
#
#   deploy/kubernetes/make-secrets.sh [--out DIR] [--namespace NS] [--client NAME]... [--admin NAME]...
#   kubectl apply -f DIR/secrets.yaml
#
# DIR (default deploy/kubernetes/secrets) gets:
#   certs/        the cluster's CA (ca.crt, and ca.key: keep it off the cluster, it signs new peers) and
#                 a certificate per peer (evosearch certs): coordinator, worker (one, shared by every
#                 worker pod), and each --client / --admin (default: one client, "client")
#   nats-tls/     a second CA, only for NATS's TLS, and the NATS server's certificate (its name:
#                 evosearch-nats, evosearch-nats.NS.svc[.cluster.local], localhost for a port-forward).
#                 Its own CA, so that the NATS server's key is no identity on the cluster's gRPC.
#   nats-passwords.env   EVOSEARCH_{WORKER,COORDINATOR,CLIENT}_PASSWORD: 'p' and 36 hex digits (a
#                 letter first: nats-server reads the value from its environment as a config value)
#   cluster.key   the key that seals checkpoints (HMAC-SHA256): 32 random bytes, hex
#   secrets.yaml  the Namespace and these Secrets of it (kubectl create secret ... --dry-run=client):
#     evosearch-nats-passwords   the three passwords (the NATS server's environment; each process its own)
#     evosearch-nats-tls         tls.crt, tls.key: the NATS server's certificate
#     evosearch-nats-ca          ca.crt: the NATS CA, for every NATS client (--nats-ca)
#     evosearch-coordinator-tls  ca.crt, tls.crt, tls.key: the coordinator's certificate
#     evosearch-worker-tls       ca.crt, tls.crt, tls.key: the workers' certificate
#     evosearch-cluster-key      cluster.key
# Clients' certificates stay in DIR/certs (they are used outside the cluster: README.md).
#
# Run again, it keeps what exists (certificates are never overwritten; passwords and the key are made
# once) and writes secrets.yaml anew, so a --client added later gets a certificate of the same CA.
# Needs node (the repository after `npm ci`; or EVOSEARCH="evosearch" for an installed CLI) and kubectl.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
read -r -a EVOSEARCH <<<"${EVOSEARCH:-node $ROOT/bin/evosearch.js}"
OUT="$HERE/secrets"
NAMESPACE=evosearch
CLIENTS=()
ADMINS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --namespace) NAMESPACE="$2"; shift 2 ;;
    --client) CLIENTS+=("$2"); shift 2 ;;
    --admin) ADMINS+=("$2"); shift 2 ;;
    *) echo "make-secrets.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ "${#CLIENTS[@]}" -eq 0 ] && CLIENTS=(client)
command -v kubectl >/dev/null 2>&1 || { echo "make-secrets.sh: kubectl not found: it writes the Secret manifests (kubectl create secret --dry-run=client)" >&2; exit 3; }
# Everything written from here on is readable by this user only.
umask 077
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CERTS="$OUT/certs"

# One peer's certificate, unless it exists: certs ROLE NAME [HOST...] (hosts: its subject alternative
# names, for tools that check them; the cluster checks the CA and the role, not the host).
certs() {
  local dir="$1" role="$2" name="$3"; shift 3
  [ -f "$dir/$name.crt" ] && return
  local hosts=()
  for h in "$@"; do hosts+=(--host "$h"); done
  "${EVOSEARCH[@]}" certs --out "$dir" "--$role" "$name" "${hosts[@]}" >/dev/null
  echo "made $dir/$name.crt ($role)"
}
# The coordinator's names: its Service, as in-cluster clients and `evosearch health` dial it, and
# localhost for a port-forward.
certs "$CERTS" coordinator coordinator evosearch-coordinator "evosearch-coordinator.$NAMESPACE.svc" "evosearch-coordinator.$NAMESPACE.svc.cluster.local" localhost 127.0.0.1
# One certificate for every worker pod: a pod's IP is not known before it starts, and nothing checks
# it (the coordinator dials the IP a worker registered, and checks the certificate's CA and role).
certs "$CERTS" worker worker localhost 127.0.0.1
for name in "${CLIENTS[@]}"; do certs "$CERTS" client "$name" localhost 127.0.0.1; done
for name in "${ADMINS[@]}"; do certs "$CERTS" admin "$name" localhost 127.0.0.1; done
# The NATS server's certificate, of its own CA (nats-tls/ca.crt). evosearch certs gives every
# certificate a role; this one's (worker) means nothing, since no gRPC peer trusts this CA. The NATS
# client checks the name: these are the names the manifests and a port-forward dial.
certs "$OUT/nats-tls" worker nats evosearch-nats "evosearch-nats.$NAMESPACE.svc" "evosearch-nats.$NAMESPACE.svc.cluster.local" localhost 127.0.0.1

random_hex() { node -e "process.stdout.write(require('crypto').randomBytes($1).toString('hex'))"; }
if [ ! -f "$OUT/nats-passwords.env" ]; then
  for user in WORKER COORDINATOR CLIENT; do echo "EVOSEARCH_${user}_PASSWORD=p$(random_hex 18)"; done >"$OUT/nats-passwords.env"
  echo "made $OUT/nats-passwords.env"
fi
if [ ! -f "$OUT/cluster.key" ]; then
  random_hex 32 >"$OUT/cluster.key"
  echo "made $OUT/cluster.key"
fi

secret() { kubectl create secret "$@" --namespace "$NAMESPACE" --dry-run=client -o yaml; }
{
  echo "# Made by deploy/kubernetes/make-secrets.sh: apply with kubectl apply -f; never commit."
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml
  echo "---"
  secret generic evosearch-nats-passwords --from-env-file="$OUT/nats-passwords.env"
  echo "---"
  secret generic evosearch-nats-tls --type=kubernetes.io/tls --from-file=tls.crt="$OUT/nats-tls/nats.crt" --from-file=tls.key="$OUT/nats-tls/nats.key"
  echo "---"
  secret generic evosearch-nats-ca --from-file=ca.crt="$OUT/nats-tls/ca.crt"
  for peer in coordinator worker; do
    echo "---"
    secret generic "evosearch-$peer-tls" --type=kubernetes.io/tls --from-file=ca.crt="$CERTS/ca.crt" --from-file=tls.crt="$CERTS/$peer.crt" --from-file=tls.key="$CERTS/$peer.key"
  done
  echo "---"
  secret generic evosearch-cluster-key --from-file=cluster.key="$OUT/cluster.key"
} >"$OUT/secrets.yaml.tmp"
mv "$OUT/secrets.yaml.tmp" "$OUT/secrets.yaml"
echo "wrote $OUT/secrets.yaml (namespace $NAMESPACE): kubectl apply -f $OUT/secrets.yaml"
echo "client flags: --tls-ca $CERTS/ca.crt --tls-cert $CERTS/${CLIENTS[0]}.crt --tls-key $CERTS/${CLIENTS[0]}.key --cluster-key $OUT/cluster.key --nats-ca $OUT/nats-tls/ca.crt (NATS user client, password in $OUT/nats-passwords.env)"
