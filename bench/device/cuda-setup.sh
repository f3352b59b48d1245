# Sourced at the start of every command of the CUDA runtime benchmark on the GPU machine (from the
# project root there): puts node, node_modules and nats-server in place from the staged pieces, installs
# the CUDA provider libraries with `evosearch install-cuda` (the product's own install step), and sets
# LD_LIBRARY_PATH to the machine's CUDA 13 and cuDNN 9 libraries. Idempotent: a warm machine keeps
# what an earlier call unpacked.
#
# Staging (bench/device/stage-pieces.sh here) splits node, node_modules, nats-server and the npm
# package with the provider libraries into pieces of at most 28 MiB, because one device call carries
# 64 MiB with the working tree; each call copies its piece to /tmp/stage, and the first command that
# finds them all joins them.
stage=/tmp/stage
mkdir -p "$stage"
for piece in .stage/piece.*; do [ -f "$piece" ] && cp -n "$piece" "$stage/"; done
[ -f .stage/sizes.txt ] && cp .stage/sizes.txt "$stage/"
if [ ! -f "$stage/joined" ] && [ -f "$stage/sizes.txt" ]; then
  want=$(awk '{s+=$2} END {print s}' "$stage/sizes.txt")
  have=$(cat "$stage"/piece.* 2>/dev/null | wc -c)
  if [ "$want" = "$have" ]; then
    cat "$stage"/piece.* > "$stage/all.bin"
    offset=0
    while read -r name size; do
      tail -c +$((offset + 1)) "$stage/all.bin" | head -c "$size" > "$stage/$name"
      offset=$((offset + size))
    done < "$stage/sizes.txt"
    rm -f "$stage/all.bin" "$stage"/piece.*
    touch "$stage/joined"
  else
    echo "cuda-setup: staged $have of $want bytes; stage the remaining pieces first" >&2
  fi
fi
if [ -f "$stage/joined" ]; then
  [ -x /usr/local/bin/node ] || { xz -dc "$stage/node.xz" > /usr/local/bin/node && chmod +x /usr/local/bin/node; }
  [ -x /usr/local/bin/nats-server ] || { xz -dc "$stage/nats-server.xz" > /usr/local/bin/nats-server && chmod +x /usr/local/bin/nats-server; }
  [ -d node_modules/onnxruntime-node ] || tar -xJf "$stage/node_modules.tar.xz"
  if [ -d .device/debs ] && ! ldconfig -p | grep -q libvulkan.so.1; then for f in .device/debs/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
  export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
fi
export CUDA_LIBS=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
# What the phase scripts share: where results go ($OUT on the device), node, and a command with the
# CUDA libraries on its library path.
out=${OUT:-runs/device}; mkdir -p "$out"
node=/usr/local/bin/node
cuda_env() { LD_LIBRARY_PATH="$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
