#!/usr/bin/env bash
# Builds the evosearch container images with podman from nothing but Debian's mirror and the npm
# registry: no container registry is needed (none is reachable from our machines).
#
#   deploy/container/build-image.sh [--cuda] [--no-cache] [--rebuild-base]
#
#   1. a Debian bookworm root with debootstrap (minbase), cleaned of docs and apt lists, kept as a
#      tarball in $EVOSEARCH_IMAGE_CACHE (default /var/cache/evosearch-image) and imported into podman
#      as localhost/evosearch-base:bookworm. An existing base image is reused, else the tarball; so only
#      the first build ever runs debootstrap. The root gets bookworm's updates and security updates
#      when it is made; --rebuild-base makes a new one (do it to pick up newer security updates).
#   2. localhost/evosearch-cluster:latest (deploy/container/Containerfile): the coordinator and CPU workers, and
#      localhost/evosearch-cluster-nats:latest, Debian's nats-server on the same base, for compose and the
#      container test.
#   3. with --cuda, localhost/evosearch-cluster-cuda:latest (Containerfile.cuda) as well: it needs the
#      nvidia/cuda base image, so a registry that serves it (or that image already in podman;
#      EVOSEARCH_CUDA_BASE names another base).
#
# Needs: root (debootstrap), podman, debootstrap (Debian: apt-get install -y podman runc debootstrap),
# and this repository's Node (20.19+, a standalone binary: it is copied into the image, since
# bookworm's nodejs is 18) with npm 11.19+. Environment: EVOSEARCH_IMAGE (the main tag),
# EVOSEARCH_NATS_IMAGE, EVOSEARCH_CUDA_IMAGE, EVOSEARCH_CUDA_BASE, EVOSEARCH_IMAGE_CACHE, DEBIAN_MIRROR,
# DEBIAN_SECURITY_MIRROR, PODMAN (the podman command).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/deploy/container"
PODMAN="${PODMAN:-podman}"
IMAGE="${EVOSEARCH_IMAGE:-localhost/evosearch-cluster:latest}"
NATS_IMAGE="${EVOSEARCH_NATS_IMAGE:-localhost/evosearch-cluster-nats:latest}"
CUDA_IMAGE="${EVOSEARCH_CUDA_IMAGE:-localhost/evosearch-cluster-cuda:latest}"
BASE_IMAGE="localhost/evosearch-base:bookworm"
CACHE="${EVOSEARCH_IMAGE_CACHE:-/var/cache/evosearch-image}"
BASE_TARBALL="$CACHE/debian-bookworm-minbase.tar.gz"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
CUDA=0
NO_CACHE=()
REBUILD_BASE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) CUDA=1; shift ;;
    --no-cache) NO_CACHE=(--no-cache); shift ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
fail() { echo "build-image.sh: $*" >&2; exit 3; }
step() { echo "build-image.sh: $* ($(date +%T))"; }
START=$SECONDS

command -v "$PODMAN" >/dev/null 2>&1 || fail "podman not found (Debian: apt-get install -y podman runc debootstrap)"

# The Node that goes into the image: this repository's, which must be a standalone binary (it is
# copied, not installed), at least what package.json's engines asks for.
NODE="$(command -v node || true)"
[ -n "$NODE" ] || fail "node not found on PATH: the image is built with this machine's Node 20.19+ (copied in; bookworm's nodejs 18 is too old)"
NODE="$(readlink -f "$NODE")"
head -c 4 "$NODE" | grep -q 'ELF' || fail "$NODE is not an ELF binary (a version manager's shim?): put the real node 20.19+ binary first on PATH"
"$NODE" -e '
  const want = require(process.argv[1]).engines.node.replace(/^>=/, "").split(".").map(Number);
  const have = process.versions.node.split(".").map(Number);
  const ok = have[0] > want[0] || (have[0] === want[0] && have[1] >= want[1]);
  if (!ok) { console.error(`node ${process.versions.node} is older than package.json engines (>=${want.join(".")})`); process.exit(1); }
' "$ROOT/package.json" || fail "the node on PATH cannot go into the image"
# Its dynamic libraries must all be in the Debian base (libstdc++6 and libc6 are, in minbase).
if ldd "$NODE" | grep -q 'not found'; then fail "$NODE needs libraries this machine lacks: $(ldd "$NODE" | grep 'not found' | tr -d '\t')"; fi
# npm's own folder, from the npm command on PATH (its bin/npm-cli.js, linked or not).
NPM_CLI="$(readlink -f "$(command -v npm || echo /nonexistent)")"
NPM_DIR="$(dirname "$(dirname "$NPM_CLI")")"
[ -f "$NPM_DIR/bin/npm-cli.js" ] && [ -f "$NPM_DIR/package.json" ] || fail "npm not found next to node (looked for bin/npm-cli.js in $NPM_DIR): the image's build stage runs this machine's npm 11.19+ (its allowScripts)"

# 1. The base image: podman's copy, else the cached tarball, else debootstrap.
make_base_tarball() {
  [ "$(id -u)" -eq 0 ] || fail "making the Debian base needs root (debootstrap): run as root once, or put a tarball at $BASE_TARBALL"
  command -v debootstrap >/dev/null 2>&1 || fail "debootstrap not found (Debian: apt-get install -y debootstrap)"
  local work
  work="$(mktemp -d /var/tmp/evosearch-debootstrap.XXXXXX)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  step "debootstrap --variant=minbase bookworm from $MIRROR"
  if ! debootstrap --variant=minbase bookworm "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log" >&2
    fail "debootstrap failed (its log's end is above); check that $MIRROR is reachable"
  fi
  local r="$work/root"
  cat >"$r/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  # What debian:bookworm-slim leaves out, so later apt-get installs stay small too.
  cat >"$r/etc/dpkg/dpkg.cfg.d/01-evosearch-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$r/etc/apt/apt.conf.d/01-evosearch-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
  # Security updates and point releases now, so every image built on this base has them (the base is
  # cached: --rebuild-base makes a fresh one). /proc is there for the packages' scripts.
  step "apt-get upgrade in the new root (bookworm-updates, bookworm-security)"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  mount -t proc proc "$r/proc"
  # shellcheck disable=SC2064
  trap "umount '$r/proc' 2>/dev/null; rm -rf '$work'" EXIT
  if ! { chroot "$r" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get -y -qq upgrade; } >"$work/upgrade.log" 2>&1; then
    tail -20 "$work/upgrade.log" >&2
    fail "apt-get upgrade in the Debian root failed (its log's end is above); check that $MIRROR and $SECURITY_MIRROR are reachable"
  fi
  chroot "$r" apt-get clean
  umount "$r/proc"
  rm -f "$r/etc/resolv.conf" # podman writes each container's own
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r"/tmp/* \
    "$r"/usr/share/man/* "$r"/usr/share/info/*
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  mkdir -p "$CACHE"
  tar -C "$r" --numeric-owner -czf "$BASE_TARBALL.partial" .
  mv "$BASE_TARBALL.partial" "$BASE_TARBALL"
  rm -rf "$work"
  trap - EXIT
}
if [ "$REBUILD_BASE" = 1 ] || ! "$PODMAN" image exists "$BASE_IMAGE"; then
  if [ "$REBUILD_BASE" = 1 ] || [ ! -f "$BASE_TARBALL" ]; then make_base_tarball; else step "reusing the cached Debian root $BASE_TARBALL"; fi
  step "podman import $BASE_IMAGE"
  "$PODMAN" import --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/bash"]' "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
else
  step "reusing the base image $BASE_IMAGE"
fi

# A machine whose kernel refuses podman's default ulimits fails every RUN step with an opaque runc
# message; find out here and say what to change.
if ! probe="$("$PODMAN" run --rm --no-healthcheck --network none "$BASE_IMAGE" true 2>&1)"; then
  if echo "$probe" | grep -q 'setting rlimit'; then
    fail "podman cannot start a container: this machine refuses its default ulimits ($probe). Fix: mkdir -p /etc/containers/containers.conf.d && printf '[containers]\\ndefault_ulimits = []\\n' >/etc/containers/containers.conf.d/ulimits.conf"
  fi
  fail "podman cannot start a container of $BASE_IMAGE: $probe (if it names crun or systemd: use runc and cgroupfs, deploy/README.md says how)"
fi

# 2. The images. Node and npm come from this machine through a second build context; the repository
# is the main context, filtered by deploy/container/containerignore (no node_modules, dist, tests,
# bundles: models are a volume). --network host: the build's npm ci and apt-get reach the registry and
# the mirror the way this machine does. --format docker: OCI's image config has no HEALTHCHECK.
STAGE="$(mktemp -d /var/tmp/evosearch-node.XXXXXX)"
# shellcheck disable=SC2064
trap "rm -rf '$STAGE'" EXIT
cp "$NODE" "$STAGE/node"
cp -a "$NPM_DIR" "$STAGE/npm"
# npm in the build reaches the registry as this machine's npm does: the same registry, and the CAs this
# machine trusts for it (npm's cafile, else NODE_EXTRA_CA_CERTS; a TLS-inspecting proxy needs them). They
# go into the build stage only, never into the runtime image. Proxy variables podman passes itself.
NPM_REGISTRY="$(npm config get registry)"
CAFILE="$(npm config get cafile 2>/dev/null || true)"
case "$CAFILE" in ""|null|undefined) CAFILE="${NODE_EXTRA_CA_CERTS:-}" ;; esac
if [ -n "$CAFILE" ]; then
  [ -r "$CAFILE" ] || fail "npm's cafile (or NODE_EXTRA_CA_CERTS) names $CAFILE, which cannot be read"
  cp "$CAFILE" "$STAGE/ca.pem"
else
  : >"$STAGE/ca.pem"
fi
build() { # tag, target, containerfile, more podman build arguments
  step "podman build $1 (target $2)"
  local tag="$1" target="$2" file="$3"
  shift 3
  "$PODMAN" build --format docker --network host "${NO_CACHE[@]}" "$@" \
    --build-context "node-dist=$STAGE" --build-arg "BASE=$BASE_IMAGE" --build-arg "NPM_REGISTRY=$NPM_REGISTRY" \
    --ignorefile "$HERE/containerignore" -f "$file" --target "$target" -t "$tag" "$ROOT"
}
build "$IMAGE" runtime "$HERE/Containerfile"
build "$NATS_IMAGE" nats "$HERE/Containerfile"
if [ "$CUDA" = 1 ]; then
  # On the CPU image's program; the base is NVIDIA's CUDA 13 + cuDNN 9 runtime (EVOSEARCH_CUDA_BASE
  # names another, e.g. a mirror's copy, or this Debian base to try everything but the CUDA libraries).
  build "$CUDA_IMAGE" runtime "$HERE/Containerfile.cuda" --build-arg "APP=$IMAGE" \
    ${EVOSEARCH_CUDA_BASE:+--build-arg "CUDA_BASE=$EVOSEARCH_CUDA_BASE"}
fi

# A smoke test of what was built: the CLI starts as the image's user and names its versions.
"$PODMAN" run --rm --no-healthcheck --network none "$IMAGE" --version
"$PODMAN" run --rm --no-healthcheck --network none --entrypoint nats-server "$NATS_IMAGE" --version
size() { "$PODMAN" image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
step "done in $((SECONDS - START)) s: $IMAGE $(size "$IMAGE"), $NATS_IMAGE $(size "$NATS_IMAGE")$([ "$CUDA" = 1 ] && echo ", $CUDA_IMAGE $(size "$CUDA_IMAGE")")"
