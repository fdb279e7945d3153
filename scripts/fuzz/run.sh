#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each:
#   bash scripts/fuzz/run.sh [seconds-per-target=60] [--parallel]   (npm run fuzz -- <seconds> [--parallel])
# --parallel runs the five targets side by side (wall time ~ seconds instead of 5 x seconds); each
# target's run count then reflects its share of the cores.
# First the TypeScript loaders (scripts/fuzz/ts-fuzz.ts: YAML/JSON config, JSONL/JSON task files,
# tokenizer files; seeded mutator, any input -> a result or a named Error, never a hang), then the
# libFuzzer targets (clang, ASan + UBSan) over the native parsers. Seeds: the model and config
# files under test/fixtures. Crashes land in build-fuzz/<target>/ (TS: build-fuzz/ts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
parallel=0
[ "${2:-}" = --parallel ] && parallel=1
[ "$secs" -gt 0 ] 2>/dev/null || { echo "fuzz: seconds per target must be a positive integer, got '$secs'" >&2; exit 2; }
# TS targets of $secs each; a hang is a failure (the input it hung on: build-fuzz/ts/work*/).
ts_fuzz() { # [target]: one target, or all three in sequence
  local n=3 limit
  [ $# -gt 0 ] && n=1
  limit=$((n * secs + 120))
  timeout "$limit" node --import tsx scripts/fuzz/ts-fuzz.ts "$secs" "$(date +%s)" "$@" ||
    { local rc=$?; [ "$rc" = 124 ] && echo "fuzz: the TypeScript fuzz $* hung (over ${limit}s): the input is under build-fuzz/ts/" >&2; return "$rc"; }
}
if [ "$parallel" = 0 ]; then ts_fuzz || exit $?; fi
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
# The targets link mentor_kd_parsers (native/parsers.cmake), the core's libtorch-free parser
# library, built here with clang + sanitizers: no libtorch, no Node headers.
cc=${cxx/clang++/clang}
cmake -S native/fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" >build-fuzz.log 2>&1 ||
  { tail -20 build-fuzz.log >&2; exit 1; }
cmake --build build-fuzz -j "$(nproc)" >>build-fuzz.log 2>&1 || { tail -30 build-fuzz.log >&2; exit 1; }
rm -f build-fuzz.log

run() {
  local target=$1; shift
  local corpus=build-fuzz/$target/corpus
  mkdir -p "$corpus" "build-fuzz/$target/artifacts"
  for seed in "$@"; do cp -f "$seed" "$corpus/seed-$(echo "$seed" | tr '/' '_')"; done
  echo "fuzz: $target for ${secs}s"
  ASAN_OPTIONS=detect_leaks=1 ./build-fuzz/bin/$target -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="build-fuzz/$target/artifacts/" -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
}
if [ "$parallel" = 0 ]; then
  run safetensors_fuzz test/fixtures/t5-hf-reference/*/model.safetensors
  run config_fuzz test/fixtures/t5-hf-reference/*/config.json
else
  # Side by side; each target's output is printed whole when all are done.
  logs=$(mktemp -d)
  pids=()
  for t in config tasks tokenizer; do ts_fuzz "$t" >"$logs/ts-$t.log" 2>&1 & pids+=($!); done
  run safetensors_fuzz test/fixtures/t5-hf-reference/*/model.safetensors >"$logs/safetensors.log" 2>&1 & pids+=($!)
  run config_fuzz test/fixtures/t5-hf-reference/*/config.json >"$logs/config.log" 2>&1 & pids+=($!)
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  cat "$logs"/*.log
  rm -rf "$logs"
  [ "$failed" = 0 ] || { echo "fuzz: a target failed (see above)" >&2; exit 1; }
fi
echo "fuzz: done (no crash or failure found in ${secs}s per target)"
