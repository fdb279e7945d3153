#!/usr/bin/env bash
# Packs, on this machine, what the GPU machine lacks into .device/ (git-ignored), for the device
# tool's `carry`:
#   node.xz               this machine's Node.js (the GPU machine has none)
#   include/              the Node-API headers the native build needs
#   node_modules.tar.xz   the installed packages (nothing can be fetched there)
#   nlohmann/             nlohmann/json's headers and CMake package (Debian's nlohmann-json3-dev;
#                         the GPU machine has no apt), found there through CMAKE_PREFIX_PATH
#   activate.sh           sourced there from the project root: node on PATH, NODE_API_HEADERS,
#                         Torch_DIR and LD_LIBRARY_PATH from the machine's PyTorch (which holds libtorch)
# About 45 MB in all; the device tool carries at most 64 MiB with the working tree.
#
#   bash scripts/setup.sh && bash scripts/device/pack.sh
#   then: device run  command="bash scripts/device/gpu-check.sh"  carry=[".device"]
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device
[ -d node_modules ] || { echo "pack: node_modules is missing: run scripts/setup.sh first" >&2; exit 1; }
mkdir -p "$dest/include"

node_bin=$(readlink -f "$(command -v node)")
if [ ! -f "$dest/node.xz" ] || [ "$node_bin" -nt "$dest/node.xz" ]; then
  echo "pack: compressing $node_bin ($(node --version))"
  xz -T0 -6 -c "$node_bin" >"$dest/node.xz"
fi
headers=""
for d in "$(dirname "$(dirname "$node_bin")")/include/node" /usr/include/node /usr/local/include/node; do
  if [ -f "$d/node_api.h" ]; then headers=$d; break; fi
done
[ -n "$headers" ] || { echo "pack: node_api.h not found (looked beside $node_bin and in /usr/include/node)" >&2; exit 1; }
cp "$headers"/node_api.h "$headers"/node_api_types.h "$headers"/js_native_api.h "$headers"/js_native_api_types.h \
  "$headers"/node_version.h "$dest/include/"

if [ ! -f "$dest/node_modules.tar.xz" ] || [ node_modules/.package-lock.json -nt "$dest/node_modules.tar.xz" ]; then
  echo "pack: compressing node_modules"
  tar -cf - node_modules | xz -T0 -6 >"$dest/node_modules.tar.xz"
fi

if [ ! -f "$dest/nlohmann/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake" ]; then
  [ -f /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake ] || { echo "pack: nlohmann-json3-dev is missing: run scripts/setup.sh first" >&2; exit 1; }
  mkdir -p "$dest/nlohmann/include" "$dest/nlohmann/share/cmake"
  cp -r /usr/include/nlohmann "$dest/nlohmann/include/"
  cp -r /usr/share/cmake/nlohmann_json "$dest/nlohmann/share/cmake/"
fi

cat >"$dest/activate.sh" <<'ACT'
# Sourced on the GPU machine, from the project root (scripts/device/pack.sh wrote it).
_dev=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p /tmp/node-bin
[ -x /tmp/node-bin/node ] || { xz -d -c "$_dev/node.xz" >/tmp/node-bin/node && chmod +x /tmp/node-bin/node; }
export PATH=/tmp/node-bin:$PATH
export NODE_API_HEADERS="$_dev/include"
# A relocatable CMake package: its targets file finds the headers from its own location.
export CMAKE_PREFIX_PATH="$_dev/nlohmann${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
[ -d node_modules ] || tar -xJf "$_dev/node_modules.tar.xz"
# libtorch with CUDA ships inside the machine's PyTorch package.
if [ -z "${Torch_DIR:-}" ] && python3 -c 'import torch' >/dev/null 2>&1; then
  Torch_DIR=$(python3 -c 'import torch.utils, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
  export Torch_DIR
  export LD_LIBRARY_PATH=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'):${LD_LIBRARY_PATH:-}
fi
echo "device: node $(node --version); Torch_DIR=${Torch_DIR:-(system)}"
ACT
du -sh "$dest"
