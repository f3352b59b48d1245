#!/usr/bin/env bash
# Here, before the device calls: packs what the CUDA runtime benchmark needs into .stage/ (ignored by
# git) as pieces of at most 28 MiB, one to carry per device call (see bench/device/cuda-setup.sh).
#   bash bench/device/stage-pieces.sh PROVIDER_PACKAGE.tgz
# PROVIDER_PACKAGE.tgz: `npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9`.
# NODE_MODULES_TARBALL=FILE.tar.xz uses that packed node_modules (e.g. one without the development-only
# packages) instead of packing this checkout's.
set -euo pipefail
cd "$(dirname "$0")/../.."
package=$1
grep -qx '/.stage/' .git/info/exclude 2>/dev/null || echo '/.stage/' >> .git/info/exclude
rm -rf .stage && mkdir -p .stage/files
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > .stage/files/node.xz
xz -T2 -9 -c "$(command -v nats-server)" > .stage/files/nats-server.xz
if [ -n "${NODE_MODULES_TARBALL:-}" ]; then cp "$NODE_MODULES_TARBALL" .stage/files/node_modules.tar.xz; else
tar -cJf .stage/files/node_modules.tar.xz --exclude='node_modules/onnxruntime-node/bin/*/darwin' --exclude='node_modules/onnxruntime-node/bin/*/win32' --exclude='node_modules/onnxruntime-node/bin/*/linux/arm64' --exclude='node_modules/.cache' node_modules
fi
cp "$package" .stage/files/gpu.tgz
: > .stage/sizes.txt
for f in node.xz nats-server.xz node_modules.tar.xz gpu.tgz; do echo "$f $(stat -c %s .stage/files/$f)" >> .stage/sizes.txt; done
(cd .stage/files && cat node.xz nats-server.xz node_modules.tar.xz gpu.tgz | split -b 28M -a 2 - ../piece.)
rm -rf .stage/files
ls -la .stage
