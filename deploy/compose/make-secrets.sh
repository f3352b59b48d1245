#!/usr/bin/env bash
# Makes what compose.yaml's cluster needs to be secured, in deploy/compose/secrets/ (or --dir DIR):
#
#   ca.crt, ca.key            the cluster's CA (`evosearch certs`; ca.key signs new peers: keep it, or move
#                             it off this host once every peer has its certificate)
#   coordinator.crt/.key      the coordinator's certificate (role coordinator)
#   worker.crt/.key           the workers' certificate (role worker), shared by the replicas of `worker`
#   client.crt/.key           a client's certificate (role client), for the `client` service
#   cluster.key               the key that seals checkpoints (coordinator and clients)
#   nats-server.env           the NATS users' passwords, for nats-server's configuration
#   nats-{coordinator,worker,client}.env   each kind of process's NATS user and password
#   host/                     the client's files again, owned by you, for submitting from this host:
#                             ca.crt, client.crt, client.key, cluster.key, nats-client.env
#
#   deploy/compose/make-secrets.sh [--dir DIR] [--image IMAGE]
#
# Nothing that exists is overwritten, so running it again only fills in what is missing. The files the
# containers read are owned by the image's user (uid 10001), keys mode 0600: as root by chown, rootless
# through `podman unshare`. The certificates are made by the image's own `evosearch certs` (no Node
# needed here). They name localhost and 127.0.0.1, which is how compose's containers are dialled (host
# networking); the cluster checks a peer's CA and role, not its host name, so dialling the coordinator
# by another name works too. Passwords are made as deploy/local-cluster.sh makes them: a letter, then
# hex digits (nats-server reads them as configuration values: docs/cluster-security.md).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="$HERE/secrets"
IMAGE="${EVOSEARCH_IMAGE:-localhost/evosearch-cluster:latest}"
PODMAN="${PODMAN:-podman}"
IMAGE_UID=10001
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-secrets.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
fail() { echo "make-secrets.sh: $*" >&2; exit 3; }
command -v "$PODMAN" >/dev/null 2>&1 || fail "podman not found (Debian: apt-get install -y podman runc)"
"$PODMAN" image exists "$IMAGE" || fail "the image $IMAGE is not built: run deploy/container/build-image.sh first"
umask 077
mkdir -p "$DIR/host"
DIR="$(cd "$DIR" && pwd)"

# The image's user owns what the containers read.
give_to_image() {
  if [ "$(id -u)" -eq 0 ]; then chown "$IMAGE_UID:$IMAGE_UID" "$@"
  else "$PODMAN" unshare chown "$IMAGE_UID:$IMAGE_UID" "$@" || fail "podman unshare chown $IMAGE_UID $* failed"
  fi
}

# 1. Certificates, by the image's CLI, run as root in a container with no network: the files are made
#    by (and owned by) this user, then handed over below.
CERTS="$(mktemp -d "$DIR/.certs.XXXXXX")"
trap 'rm -rf "$CERTS"' EXIT
[ -f "$DIR/ca.crt" ] && cp "$DIR/ca.crt" "$CERTS/" && cp "$DIR/ca.key" "$CERTS/" 2>/dev/null
peers=()
for peer in coordinator worker client; do [ -f "$DIR/$peer.crt" ] || peers+=("--$peer" "$peer"); done
if [ "${#peers[@]}" -gt 0 ]; then
  "$PODMAN" run --rm --no-healthcheck --network none --user 0:0 -v "$CERTS:/out" "$IMAGE" certs --out /out "${peers[@]}" >/dev/null \
    || fail "evosearch certs failed in $IMAGE (its message is above)"
  for f in "$CERTS"/*; do
    name="$(basename "$f")"
    [ -e "$DIR/$name" ] || cp "$f" "$DIR/$name"
  done
fi
chmod 0644 "$DIR"/*.crt

# 2. NATS passwords (nats-server.env for the server, one file per user) and the cluster key.
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
if [ ! -f "$DIR/nats-server.env" ]; then
  for user in WORKER COORDINATOR CLIENT; do echo "EVOSEARCH_${user}_PASSWORD=p$(random_hex 18)"; done >"$DIR/nats-server.env"
fi
for user in worker coordinator client; do
  [ -f "$DIR/nats-$user.env" ] && continue
  upper="$(echo "$user" | tr a-z A-Z)"
  password="$(sed -n "s/^EVOSEARCH_${upper}_PASSWORD=//p" "$DIR/nats-server.env")"
  [ -n "$password" ] || fail "$DIR/nats-server.env has no EVOSEARCH_${upper}_PASSWORD line: delete it and run again"
  printf 'EVOSEARCH_NATS_USER=%s\nEVOSEARCH_NATS_PASSWORD=%s\n' "$user" "$password" >"$DIR/nats-$user.env"
done
[ -f "$DIR/cluster.key" ] || random_hex 32 >"$DIR/cluster.key"

# 3. The client's files for this host (yours), then the containers' (the image user's). compose reads
#    the .env files itself, so they stay yours.
for f in ca.crt client.crt client.key cluster.key nats-client.env; do [ -f "$DIR/host/$f" ] || cp "$DIR/$f" "$DIR/host/$f"; done
chmod 0644 "$DIR/host/ca.crt" "$DIR/host/client.crt"
give_to_image "$DIR/coordinator.key" "$DIR/worker.key" "$DIR/client.key" "$DIR/cluster.key"
chmod 0600 "$DIR/coordinator.key" "$DIR/worker.key" "$DIR/client.key" "$DIR/cluster.key"
# The folder itself: the containers reach their files through single-file mounts, so it stays yours.
chmod 0700 "$DIR"

# 4. The client container's output folder (EVOSEARCH_CLIENT_OUT, relative to compose.yaml's folder as
#    compose reads it), which the image's user writes: made here, or compose would make it root's.
OUT="${EVOSEARCH_CLIENT_OUT:-out}"
case "$OUT" in /*) ;; *) OUT="$HERE/$OUT" ;; esac
if [ ! -d "$OUT" ]; then
  mkdir -p "$OUT" && chmod 0755 "$OUT" && give_to_image "$OUT"
fi
echo "secrets in $DIR (the client's files for this host in $DIR/host); the client container's runs go to $OUT"
