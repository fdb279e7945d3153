#!/usr/bin/env bash
# The GPU machine's check, in one call: build the addon with CUDA against the machine's PyTorch
# libtorch, run the CUDA tests, then the GPU benchmarks side by side with HF transformers on the
# same GPU, then (time allowing) the whole suite against that libtorch. Prepared on the CPU machine
# (scripts/device/pack.sh packs Node and node_modules); most valuable first, because device time
# is short (15 minutes a session).
#
#   device run:  command="bash scripts/device/gpu-check.sh"  carry=[".device"]  timeout_s=570
#
# Results under $OUT (at most 8 files come back): summary.txt (the lines that matter),
# build.log, tests-cuda.log, bench.log, suite.log. GPU_CHECK_SUITE=0 skips the whole suite;
# GPU_CHECK_BUDGET_S (default 540) is the wall time after which later parts are skipped.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NO_COLOR=1 FORCE_COLOR=0
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
t0=$(date +%s)
budget=${GPU_CHECK_BUDGET_S:-540}
left() { echo $((budget - ($(date +%s) - t0))); }
say() { echo "[$(($(date +%s) - t0)) s] $*" | tee -a "$out/summary.txt"; }

# shellcheck disable=SC1091
source .device/activate.sh >>"$out/summary.txt" 2>&1 || { say "activate failed (run scripts/device/pack.sh on the CPU machine and carry .device)"; exit 1; }
say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi: none')"
say "python torch $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo 'none'); $(nvcc --version 2>/dev/null | tail -1)"

# ---- build: plain CMake (cmake-js would download Node's headers, and nothing can be fetched there)
arch=${CUDA_ARCH:-90}
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
if cmake -S . -B build "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMENTOR_KD_DEV=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$out/build.log" 2>&1 &&
   cmake --build build -j "$(nproc)" >>"$out/build.log" 2>&1; then
  say "build: ok ($(grep -E 'mentor-kd: (Torch|CUDA|distributed)' "$out/build.log" | sed 's/^-- //' | tr '\n' ';'))"
else
  say "build: FAILED; the end of build.log:"
  tail -40 "$out/build.log" | tee -a "$out/summary.txt"
  exit 1
fi
say "runtime: $(node --import tsx -e "import('./lib/native/index.ts').then(m => { const i = m.native().runtime.info(); console.log(JSON.stringify({ torch: i.torchVersion, cudaCompiled: i.cudaCompiled, cudaAvailable: i.cudaAvailable, threads: i.threads })); })" 2>&1 | tail -1)"
counts() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^ *(Test Files|Tests) ' | tr -s ' ' | tr '\n' ';'; }

# ---- CUDA tests (kd kernels; model, generation, train step, NCCL group)
timeout 240 npx vitest run test/kd-cuda.test.ts test/t5-cuda.test.ts >"$out/tests-cuda.log" 2>&1
say "cuda tests: rc $? — $(counts "$out/tests-cuda.log")"
grep -E 'FAIL|AssertionError|Error:' "$out/tests-cuda.log" | sed 's/\x1b\[[0-9;]*m//g' | head -20 >>"$out/summary.txt"

# ---- the generation engine on CUDA (decode step replayed from a CUDA graph): its tests, appended to tests-cuda.log
gen_log=$(mktemp)
timeout 150 npx vitest run test/generate-engine.test.ts >"$gen_log" 2>&1
say "generation engine tests: rc $? — $(counts "$gen_log")"
grep -E 'FAIL|AssertionError|Error:' "$gen_log" | sed 's/\x1b\[[0-9;]*m//g' | head -10 >>"$out/summary.txt"
{ echo "== test/generate-engine.test.ts"; cat "$gen_log"; } >>"$out/tests-cuda.log"
rm -f "$gen_log"

# ---- benchmarks, ours beside HF on this GPU
bench() { # name, command...: its output goes to bench.log; summary gets the figures or the first error
  local name=$1; shift
  if [ "$(left)" -lt 60 ]; then say "bench $name: skipped (time)"; return; fi
  local part; part=$(mktemp)
  timeout 150 "$@" >"$part" 2>&1
  local rc=$?
  { echo "== $name (rc $rc): $*"; cat "$part"; } >>"$out/bench.log"
  if [ $rc = 0 ]; then say "bench $name: $(figures <"$part")"; else say "bench $name: FAILED (rc $rc) — $(grep -m1 -iE 'error|failed' "$part" | cut -c1-300)"; fi
  rm -f "$part"
}
# The figures of a benchmark's output: selected fields of a JSON last line, else the last line.
figures() {
  python3 -c '
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
try:
    r = json.loads(lines[-1])
    keys = ["device", "precision", "stepMedianMs", "stepMinMs", "tokensPerSecond", "speedupVsHf", "peakMemoryMiB", "reference", "speedupFloat32", "speedupBfloat16"]
    print("; ".join(f"{k} {r[k]}" for k in keys if k in r))
except Exception:
    print(lines[-1][:400] if lines else "(no output)")
'
}
# HF's step on this GPU: sets hf_ms to its median (empty on failure).
hf() { # label, args...
  local label=$1; shift
  hf_ms=""
  local part; part=$(mktemp)
  timeout 150 python3 scripts/bench/hf_train_step.py --device cuda "$@" >"$part" 2>&1
  local rc=$?
  { echo "== HF $label (rc $rc)"; cat "$part"; } >>"$out/bench.log"
  if [ $rc = 0 ]; then
    hf_ms=$(tail -1 "$part" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["stepMedianMs"])' 2>/dev/null)
    say "HF $label: $(figures <"$part")"
  else
    say "HF $label: FAILED (rc $rc) — $(tail -1 "$part" | cut -c1-300)"
  fi
  rm -f "$part"
}
bench kd-loss npx tsx scripts/bench/kd-loss.ts --device cuda --rows 8192 --vocab 32128
hf "train step fp32 (TF32)"
hf32=$hf_ms
hf "train step bf16 autocast" --bf16
hfbf=$hf_ms
bench train-fp32 npx tsx scripts/bench/train.ts --device cuda --iters 20 ${hf32:+--hf-ms "$hf32"} --json
bench train-bf16 npx tsx scripts/bench/train.ts --device cuda --iters 20 --bf16 ${hfbf:+--hf-ms "$hfbf"} --json
# W-aug on the CUDA engine beside the static path on the same GPU (speedupFloat32 / speedupBfloat16)
bench generate-waug npx tsx scripts/bench/generate.ts --device cuda --json

# ---- the whole suite against this libtorch (CPU tests too: API drift between 1.13 and 2.x)
if [ "${GPU_CHECK_SUITE:-1}" = 1 ] && [ "$(left)" -gt 90 ]; then
  timeout "$(($(left) - 20))" npx vitest run >"$out/suite.log" 2>&1
  say "suite: rc $? — $(counts "$out/suite.log")"
  grep -E '^ *(FAIL|×)' "$out/suite.log" | sed 's/\x1b\[[0-9;]*m//g' | sort -u | head -30 >>"$out/summary.txt"
else
  say "suite: skipped"
fi
say "done"
