#!/usr/bin/env bash
# Compile check of native/ against libtorch 2.x headers, for machines that only have 1.13.
#
#   bash scripts/check-torch2.sh     # every .cc (CPU, CUDA, c10d Gloo and NCCL paths), and .cu with nvcc if present
#
# Why: the build here links Debian's libtorch 1.13, but PyTorch's libtorch (2.x: the GPU machines)
# changed APIs (e.g. ProcessGroupGloo became a c10d::Backend). This fetches Debian trixie's
# libtorch-dev 2.6 (headers only, ~2.4 MB), and runs the compiler's front end on every native
# source with the same flags and precompiled-header includes as the real build. It does not link
# or run anything. cuBLAS/cuSPARSE/cuSOLVER headers (absent from the CUDA toolkit here) and one
# generated c10 CUDA header are replaced by empty stubs: the check covers our code, not theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/build/torch2-headers
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ ! -d "$cache/usr/include/torch" ]; then
  mkdir -p "$cache"
  echo "check-torch2: finding libtorch-dev in Debian trixie ($mirror)"
  curl -fsS "$mirror/dists/trixie/main/binary-amd64/Packages.xz" -o "$cache/Packages.xz"
  file=$(xz -dc "$cache/Packages.xz" | awk '/^Package: libtorch-dev$/{p=1} p&&/^Filename:/{print $2; p=0}' | head -1)
  rm "$cache/Packages.xz"
  [ -n "$file" ] || { echo "check-torch2: libtorch-dev not found in trixie's package index" >&2; exit 1; }
  echo "check-torch2: fetching $file"
  curl -fsS "$mirror/$file" -o "$cache/libtorch-dev.deb"
  dpkg-deb -x "$cache/libtorch-dev.deb" "$cache"
  rm "$cache/libtorch-dev.deb"
fi
inc=$cache/usr/include
version=$(awk '/#define TORCH_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' "$inc/torch/csrc/api/include/torch/version.h")

stub=$cache/stubs
mkdir -p "$stub/c10/cuda/impl"
printf '#pragma once\ntypedef struct cublasContext* cublasHandle_t;\ntypedef enum { CUBLAS_STATUS_SUCCESS = 0 } cublasStatus_t;\n' >"$stub/cublas_v2.h"
printf '#pragma once\ntypedef struct cusparseContext* cusparseHandle_t;\ntypedef enum { CUSPARSE_STATUS_SUCCESS = 0 } cusparseStatus_t;\n' >"$stub/cusparse.h"
printf '#pragma once\ntypedef struct cublasLtContext* cublasLtHandle_t;\n' >"$stub/cublasLt.h"
printf '#pragma once\ntypedef struct cusolverDnContext* cusolverDnHandle_t;\ntypedef enum { CUSOLVER_STATUS_SUCCESS = 0 } cusolverStatus_t;\n' >"$stub/cusolverDn.h"
printf '#pragma once\n#include "cusolverDn.h"\n' >"$stub/cusolver_common.h"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$stub/c10/cuda/impl/cuda_cmake_macros.h"

# NCCL's header (for the ProcessGroupNCCL path), from Debian's libnccl-dev (contrib).
if [ ! -f "$stub/nccl.h" ]; then
  echo "check-torch2: fetching nccl.h (libnccl-dev, Debian trixie contrib)"
  curl -fsS "$mirror/dists/trixie/contrib/binary-amd64/Packages.xz" -o "$cache/Packages.xz"
  nfile=$(xz -dc "$cache/Packages.xz" | awk '/^Package: libnccl-dev$/{p=1} p&&/^Filename:/{print $2; p=0}' | head -1)
  rm "$cache/Packages.xz"
  if [ -n "$nfile" ] && curl -fsS "$mirror/$nfile" -o "$cache/nccl.deb"; then
    dpkg-deb --fsys-tarfile "$cache/nccl.deb" | tar -xO ./usr/include/nccl.h >"$stub/nccl.h" || rm -f "$stub/nccl.h"
    rm -f "$cache/nccl.deb"
  fi
  [ -f "$stub/nccl.h" ] || echo "check-torch2: nccl.h unavailable: the NCCL path is not checked"
fi

cuda_inc=""
nvcc=$(command -v nvcc || true)
if [ -n "$nvcc" ]; then
  # nvcc may be a wrapper script: look for cuda.h in the usual homes.
  for d in "${CUDA_HOME:-/nonexistent}/include" "$(dirname "$(dirname "$(readlink -f "$nvcc")")")/include" /usr/local/cuda/include /usr/local/cuda-*/include; do
    if [ -f "$d/cuda.h" ]; then cuda_inc=$d; break; fi
  done
fi

common=(-std=gnu++17 -D_GLIBCXX_USE_CXX11_ABI=1 -DNAPI_CPP_EXCEPTIONS -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED
  -DBUILDING_NODE_EXTENSION -DMENTOR_KD_WITH_C10D=1 -DUSE_C10D_GLOO=1 -DUSE_DISTRIBUTED
  -I"$root/node_modules/node-api-headers/include" -I"$root/node_modules/node-addon-api" -I"$root/native"
  -isystem "$inc" -isystem "$inc/torch/csrc/api/include")
cuda_flags=()
[ -n "$cuda_inc" ] && cuda_flags=(-DMENTOR_KD_WITH_CUDA=1 -isystem "$stub" -isystem "$cuda_inc")
[ -n "$cuda_inc" ] && [ -f "$stub/nccl.h" ] && cuda_flags+=(-DMENTOR_KD_WITH_C10D_NCCL=1 -DUSE_C10D_NCCL=1)

failed=0
checked=0
log=$(mktemp)
for f in $(find native -name '*.cc' -not -path 'native/fuzz/*' | sort); do
  checked=$((checked + 1))
  if ! g++ -fsyntax-only "${common[@]}" "${cuda_flags[@]}" -include native/pch.h "$f" >"$log" 2>&1; then
    failed=$((failed + 1))
    echo "FAIL $f"
    grep -E 'error' "$log" | head -5
  fi
done
if [ -n "$nvcc" ]; then
  for f in $(find native -name '*.cu' | sort); do
    checked=$((checked + 1))
    if ! nvcc -std=c++17 -arch=sm_90 -c "$f" -o /dev/null -I native -isystem "$stub" -isystem "$inc" -isystem "$inc/torch/csrc/api/include" -D_GLIBCXX_USE_CXX11_ABI=1 >"$log" 2>&1; then
      failed=$((failed + 1))
      echo "FAIL $f"
      grep -E 'error' "$log" | head -5
    fi
  done
else
  echo "check-torch2: no nvcc: .cu files not checked"
fi
rm -f "$log"
echo "check-torch2: libtorch $version headers: $((checked - failed))/$checked sources compile"
[ "$failed" -eq 0 ]
