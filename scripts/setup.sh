#!/usr/bin/env bash
# Sets up mentor-kd on a fresh machine: libtorch (+ OpenBLAS), Node dependencies,
# the native addon and the TypeScript build. Safe to run again.
#
# libtorch is taken, in order, from: $Torch_DIR or $LIBTORCH; PyTorch's own copy
# (python3 -c 'import torch'); the system (Debian/Ubuntu libtorch-dev). When none
# is found and this is Debian/Ubuntu as root, libtorch-dev is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do have_deb "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! can_apt; then
    say "missing system packages: ${missing[*]} (install them, or run setup as root on Debian/Ubuntu)"
    return 1
  fi
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- build tools ------------------------------------------------------------
for tool in cmake g++ make; do
  if ! command -v $tool >/dev/null; then
    case $tool in g++) apt_install g++ ;; *) apt_install $tool ;; esac
  fi
done

# --- libtorch ---------------------------------------------------------------
torch_src=""
if [ -n "${Torch_DIR:-}" ]; then
  torch_src="Torch_DIR=$Torch_DIR"
elif [ -n "${LIBTORCH:-}" ]; then
  torch_src="LIBTORCH=$LIBTORCH"
elif python3 -c 'import torch' >/dev/null 2>&1; then
  torch_src="PyTorch ($(python3 -c 'import torch; print(torch.__version__)'))"
elif ls /usr/lib/*/cmake/Torch/TorchConfig.cmake >/dev/null 2>&1; then
  torch_src="system libtorch-dev"
else
  if command -v apt-get >/dev/null; then
    apt_install libtorch-dev || { say "libtorch not found: set Torch_DIR or LIBTORCH, or install libtorch-dev"; exit 1; }
    torch_src="system libtorch-dev (installed now)"
  else
    say "libtorch not found: set Torch_DIR (…/share/cmake/Torch) or LIBTORCH (the unpacked libtorch folder)"
    exit 1
  fi
fi
say "libtorch: $torch_src"

# Debian's libtorch does its matmuls through the system BLAS; the default
# reference BLAS is ~20x slower than OpenBLAS for a training step. The c10d
# headers (distributed training) need gloo's headers.
if [ "$torch_src" = "system libtorch-dev" ] || [ "$torch_src" = "system libtorch-dev (installed now)" ]; then
  apt_install libopenblas0-openmp libgloo-dev || say "warning: OpenBLAS/gloo not installed; training will be slow"
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  say "BLAS: ${blas:-unknown}"
fi

# JSON for the config.json and safetensors header parsers (nlohmann/json, header-only).
if ! ls /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake /usr/lib/cmake/nlohmann_json/nlohmann_jsonConfig.cmake >/dev/null 2>&1; then
  apt_install nlohmann-json3-dev || { say "nlohmann/json not found: install nlohmann-json3-dev (or put nlohmann_jsonConfig.cmake on CMAKE_PREFIX_PATH)"; exit 1; }
fi

# clang-format for `npm run lint` / `npm run format` (the C++ half; a development tool only).
if ! command -v clang-format >/dev/null; then
  apt_install clang-format || say "warning: clang-format not installed: npm run lint skips the C++ check"
fi

# --- Node dependencies, native addon, TypeScript -----------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi
say "building the native addons (cmake-js; -DMENTOR_KD_DEV=ON: mentor_kd.node and the tests' mentor_kd_dev.node)"
npm run --silent build:native >/dev/null
say "building TypeScript"
npm run --silent build:ts
node -e "import('./dist/lib/native/index.js').then(m => { const i = m.native().runtime.info(); console.log('setup: native addon OK — libtorch ' + i.torchVersion + ', ' + i.threads + ' threads, CUDA ' + (i.cudaAvailable ? 'available' : 'not available')); })"
