/**
 * Training-step benchmark: one full optimizer step — forward, fused lm_head+CE loss, backward,
 * gradient clipping, AdamW — through the native train step (one JS→native call per step), for a
 * randomly initialised model with flan-t5-small's configuration (vocab 32128, d_model 512, d_kv 64,
 * d_ff 1024, 8+8 layers, 6 heads, gated-gelu, untied head, dropout 0.1), batch 8, 128 source and
 * 128 target tokens.
 *
 *   npm run bench:train -- [--threads 2] [--iters 7] [--batch 8] [--src-len 128] [--tgt-len 128]
 *                          [--device cpu|cuda] [--dtype float32|bfloat16] [--bf16]
 *                          [--hf-ms N] [--mentor] [--default-malloc] [--json]
 *                          [--family t5|causal] [--layers N]
 *
 * --family causal: a decoder-only student with Qwen2-0.5B's shape (hidden 896, 14 heads / 2 KV
 * heads, intermediate 4864, vocab 151 936, tied head; 24 layers unless --layers shrinks it), one
 * sequence per row of src-len prompt + tgt-len completion tokens, the loss on the completion (the
 * fused lm_head + CE over the completion rows only). tokens/s counts prompt + completion tokens.
 * No HF reference is printed for it (PyTorch is not installed here).
 *
 * Reports the median step time and tokens/s over all steps and over the "quiet" steps, during
 * which other processes used less than 5% of the machine (measured from /proc/stat minus this
 * process's own CPU time): on a shared 2-core machine other work inflates the numbers. --mentor adds an online mentor of the same size
 * (teacher-forced forward under no-grad + the KL term).
 *
 * Allocator: unless --default-malloc or MALLOC_ARENA_MAX is already set, the script re-runs
 * itself with glibc malloc tuned for training (MALLOC_ARENA_MAX=1, MALLOC_MMAP_THRESHOLD_ and
 * MALLOC_TRIM_THRESHOLD_ at 2^32-1): freed activations stay in the process instead of being
 * returned to the kernel and faulted in again each step (~330k minor page faults per step with
 * the defaults, ~0 tuned). docs/training.md has both figures.
 *
 * Reference (not re-run here: PyTorch is not installed on this machine): HF transformers +
 * PyTorch 1.13 + OpenBLAS took a median 4.25 s per training step of this shape on this CPU with
 * 2 threads. Goal: >= 1.2x faster, i.e. <= 3.5 s. On another machine (a GPU), measure the
 * reference there with scripts/bench/hf_train_step.py (same shape, optimizer and precision) and
 * pass its median as --hf-ms; without it no ratio is printed for a GPU run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { native, setNumThreads } from '../../lib/native/index.js';
import { CausalLM } from '../../lib/model/causal-model.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { tensor } from '../../lib/model/tensor.js';
import { TrainEngine } from '../../lib/train/engine.js';

import { cliMallocEnv } from './cli-malloc.js';
import { FLAN_T5_SMALL, QWEN2_0_5B } from './configs.js';
const HF_CPU_REFERENCE_MS = 4250;

if (!process.argv.includes('--default-malloc') && process.env.MALLOC_ARENA_MAX === undefined) {
  // glibc reads these once, at process start: re-run under them.
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, ...cliMallocEnv() } });
  process.exit(r.status ?? 1);
}
const tunedMalloc = process.env.MALLOC_ARENA_MAX !== undefined;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const threads = Number(arg('threads', '2'));
const iters = Number(arg('iters', '7'));
const B = Number(arg('batch', '8')),
  S = Number(arg('src-len', '128')),
  T = Number(arg('tgt-len', '128'));
const withMentor = process.argv.includes('--mentor');
const family = arg('family', 't5');
if (family !== 't5' && family !== 'causal') throw new Error(`--family must be t5 or causal, got ${family}`);
const causal = family === 'causal';
const layers = Number(arg('layers', String(QWEN2_0_5B.num_hidden_layers)));
const causalConfig = { ...QWEN2_0_5B, num_hidden_layers: layers };
const device = arg('device', 'cpu') as 'cpu' | 'cuda';
const dtype = arg('dtype', 'float32') as 'float32' | 'bfloat16';
// bf16 autocast (fp32 weights), on CPU or CUDA: the trainer's `bf16` setting.
const bf16 = process.argv.includes('--bf16');
const HF_REFERENCE_MS = Number(arg('hf-ms', device === 'cpu' && !causal ? String(HF_CPU_REFERENCE_MS) : 'NaN'));
const hfKnown = Number.isFinite(HF_REFERENCE_MS);
const precision = bf16 ? `${dtype} weights + bf16 autocast` : dtype;
const asJson = process.argv.includes('--json');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Busy CPU time of the whole machine so far, in ms (Linux; 0 elsewhere). */
function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
    return ((user + nice + system + irq + softirq + steal) * 1000) / 100; // USER_HZ = 100
  } catch {
    return 0;
  }
}

setNumThreads(threads);
const build = (seed: number) =>
  causal ? CausalLM.fromConfig(causalConfig, { seed, device, dtype }) : T5Model.fromConfig(FLAN_T5_SMALL, { seed, device, dtype });
const model = await build(0);
const mentor = withMentor ? await build(1) : undefined;
const engine = await TrainEngine.create(model, { learning_rate: 1e-4, weight_decay: 0.01, max_grad_norm: 1, seed: 0, mentor, bf16 });
let seed = 12345;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const ids = (n: number) => Int32Array.from({ length: n }, () => 2 + Math.floor(rand() * 32000));
// Causal rows: S prompt then T completion tokens; labels on the completion only (-100 on the prompt).
const causalIds = causal ? ids(B * (S + T)) : new Int32Array(0);
const batch = causal
  ? {
      inputIds: tensor(causalIds, [B, S + T]),
      attentionMask: tensor(new Int32Array(B * (S + T)).fill(1), [B, S + T]),
      labels: tensor(
        causalIds.map((x, i) => (i % (S + T) < S ? -100 : x)),
        [B, S + T],
      ),
      exampleIds: [],
    }
  : {
      inputIds: tensor(ids(B * S), [B, S]),
      attentionMask: tensor(new Int32Array(B * S).fill(1), [B, S]),
      labels: tensor(ids(B * T), [B, T]),
      exampleIds: [],
    };

const loadBefore = loadavg()[0]!;
const wall: number[] = [],
  cpuMs: number[] = [],
  othersMs: number[] = [],
  faults: number[] = [];
const parts = { forward: [] as number[], backward: [] as number[], optimizer: [] as number[] };
const losses: number[] = [];
for (let i = 0; i < iters + 1; i++) {
  const c0 = process.cpuUsage();
  const busy0 = machineBusyMs();
  const f0 = process.resourceUsage().minorPageFault;
  const t0 = performance.now();
  const r = await engine.step([batch]);
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const others = Math.max(0, machineBusyMs() - busy0 - (c.user + c.system) / 1000);
  losses.push(r.loss);
  if (i === 0) continue; // warm-up: allocator, OpenMP pool, optimizer state first touch
  wall.push(ms);
  for (const k of ['forward', 'backward', 'optimizer'] as const) parts[k].push(r.timings[k] * 1000);
  cpuMs.push((c.user + c.system) / 1000);
  othersMs.push(others);
  faults.push(process.resourceUsage().minorPageFault - f0);
  if (!asJson)
    process.stderr.write(
      `step ${i}: ${ms.toFixed(0)} ms (cpu ${((c.user + c.system) / 1000).toFixed(0)} ms, others ${others.toFixed(0)} ms; forward+loss ${(r.timings.forward * 1000).toFixed(0)}, backward ${(r.timings.backward * 1000).toFixed(0)}, optimizer ${(r.timings.optimizer * 1000).toFixed(0)} ms), loss ${r.loss.toFixed(4)}\n`,
    );
}
const loadAfter = loadavg()[0]!;
const info = native().runtime.info();
const med = median(wall);
// Quiet: other processes took under 5% of the machine (2 cores x wall time) during the step.
const quiet = wall.filter((w, i) => othersMs[i]! < 0.05 * cpus().length * w);
const quietMed = quiet.length ? median(quiet) : undefined;
const result = {
  machine: `${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}`,
  device,
  precision,
  libtorch: info.torchVersion,
  threads: info.threads,
  family,
  config: causal ? `Qwen2-0.5B shape, ${layers} of 24 layers` : 'flan-t5-small',
  shape: { batch: B, sourceTokens: S, targetTokens: T },
  parameters: model.info().numParameters,
  onlineMentor: withMentor,
  malloc: tunedMalloc
    ? `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX} MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_ ?? '-'} MALLOC_TRIM_THRESHOLD_=${process.env.MALLOC_TRIM_THRESHOLD_ ?? '-'} GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES ?? '-'}`
    : 'glibc defaults',
  minorPageFaultsPerStep: Math.round(median(faults)),
  stepMedianMs: Math.round(med),
  stepMinMs: Math.round(Math.min(...wall)),
  stepAllMs: wall.map(Math.round),
  othersCpuMs: othersMs.map(Math.round),
  quietSteps: quiet.length,
  quietStepMedianMs: quietMed === undefined ? null : Math.round(quietMed),
  quietTokensPerSecond: quietMed === undefined ? null : Math.round((B * (S + T)) / (quietMed / 1000)),
  quietSpeedupVsHf: quietMed === undefined || !hfKnown ? null : Number((HF_REFERENCE_MS / quietMed).toFixed(2)),
  cpuMedianMs: Math.round(median(cpuMs)),
  medianMs: { forwardAndLoss: Math.round(median(parts.forward)), backward: Math.round(median(parts.backward)), optimizer: Math.round(median(parts.optimizer)) },
  tokensPerSecond: Math.round((B * (S + T)) / (med / 1000)),
  targetTokensPerSecond: Math.round((B * T) / (med / 1000)),
  speedupVsHf: hfKnown ? Number((HF_REFERENCE_MS / med).toFixed(2)) : null,
  loadAverage1m: { before: loadBefore, after: loadAfter },
  lossFirstLast: [losses[0], losses[losses.length - 1]],
  reference:
    arg('hf-ms', '') !== ''
      ? `HF transformers, same shape, optimizer and precision on this machine (scripts/bench/hf_train_step.py): ${HF_REFERENCE_MS} ms median per step`
      : device === 'cpu' && !causal
        ? `HF transformers + PyTorch 1.13 + OpenBLAS, same shape and CPU, 2 threads: ${HF_REFERENCE_MS} ms median per step (not re-run: PyTorch is not installed here)`
        : causal
          ? 'none: no HF decoder-only reference was measured (PyTorch is not installed here)'
          : 'none given: run scripts/bench/hf_train_step.py here and pass its median as --hf-ms',
};
engine.dispose();
model.dispose();
mentor?.dispose();
if (asJson) console.log(JSON.stringify(result));
else {
  console.log(
    `${result.config} config (${(result.parameters / 1e6).toFixed(1)}M params), batch ${B}, ${S}/${T} ${causal ? 'prompt/completion' : 'source/target'} tokens, ${precision} on ${device}, ${result.threads} threads, libtorch ${result.libtorch}, ${result.machine}`,
  );
  console.log(`malloc: ${result.malloc}; ${result.minorPageFaultsPerStep} minor page faults per step`);
  console.log(
    `full train step${withMentor ? ' with online mentor' : ''}: median ${result.stepMedianMs} ms, min ${result.stepMinMs} ms (runs ${result.stepAllMs.join(', ')}); ${result.tokensPerSecond} tokens/s (${result.targetTokensPerSecond} target tokens/s)`,
  );
  console.log(
    quietMed === undefined
      ? `  quiet steps (others < 5% of the machine): none — the machine was busy; re-run when it is idle`
      : `  quiet steps (others < 5% of the machine): ${quiet.length} of ${wall.length}, median ${result.quietStepMedianMs} ms, ${result.quietTokensPerSecond} tokens/s, ${result.quietSpeedupVsHf}x vs HF`,
  );
  console.log(
    `  median parts: forward+fused loss ${result.medianMs.forwardAndLoss} ms, backward ${result.medianMs.backward} ms, clip+AdamW ${result.medianMs.optimizer} ms`,
  );
  console.log(
    `${hfKnown ? `vs HF reference ${HF_REFERENCE_MS} ms: ${result.speedupVsHf}x` : 'no HF reference for this device'}; load average ${loadBefore.toFixed(2)} -> ${loadAfter.toFixed(2)}`,
  );
  console.log(`reference: ${result.reference}`);
}
