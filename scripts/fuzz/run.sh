#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a bounded time.
#   bash scripts/fuzz/run.sh [seconds-per-target=60]
# Seeds: the model and config files under test/fixtures. Crashes land in build-fuzz/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
cxx=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$cxx" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
    cxx=$(command -v clang++-14)
  else
    echo "fuzz: clang++ with libFuzzer is needed (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 1
  fi
fi
# The targets compile the core sources they need (no libtorch, no Node headers) with clang + sanitizers.
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Inative)
mkdir -p build-fuzz/bin
"$cxx" "${flags[@]}" native/fuzz/safetensors_fuzz.cc native/io/safetensors_header.cc -o build-fuzz/bin/safetensors_fuzz
"$cxx" "${flags[@]}" native/fuzz/config_fuzz.cc native/t5/config.cc native/io/text_file.cc -o build-fuzz/bin/config_fuzz

run() {
  local target=$1; shift
  local corpus=build-fuzz/$target/corpus
  mkdir -p "$corpus" "build-fuzz/$target/artifacts"
  for seed in "$@"; do cp -f "$seed" "$corpus/seed-$(echo "$seed" | tr '/' '_')"; done
  echo "fuzz: $target for ${secs}s"
  ASAN_OPTIONS=detect_leaks=1 ./build-fuzz/bin/$target -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="build-fuzz/$target/artifacts/" -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
}
run safetensors_fuzz test/fixtures/t5-hf-reference/*/model.safetensors
run config_fuzz test/fixtures/t5-hf-reference/*/config.json
echo "fuzz: done (no crash found in ${secs}s per target)"
