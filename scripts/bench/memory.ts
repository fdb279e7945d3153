/**
 * Memory benchmark: peak resident memory and step time of full training steps (forward, fused
 * loss, backward, clipping, AdamW through the native train step) with each activation-checkpointing
 * mode, beside the memory planner's estimate (lib/plan). Each mode runs in its own child process
 * (peak RSS only grows within a process), with glibc malloc's defaults unless --malloc says
 * otherwise (exact: RSS follows the live tensors; cli: bin/mentor-kd's settings; see below).
 *
 *   npx tsx scripts/bench/memory.ts [--config small|base|large] [--batch 8] [--src-len 512] [--tgt-len 256]
 *                                   [--modes none,blocks] [--steps 1] [--threads 2] [--malloc default|exact|cli] [--json]
 *   ... --alternate 3      step time only: none and blocks alternating in one process (same load)
 *
 * Per mode: a warm-up step on two 8-token examples allocates the AdamW moments; then `steps`
 * full-size steps. `static` is the RSS before the last one (weights, AdamW moments, the runtime;
 * gradients are freed after each step); `peak` the highest RSS during it (VmHWM, reset before it
 * via /proc/self/clear_refs); activations = peak - static - gradient bytes (fp32, one per parameter).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { native, setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { tensor } from '../../lib/model/tensor.js';
import { TrainEngine } from '../../lib/train/engine.js';
import type { ActivationCheckpointing } from '../../lib/config/train-settings.js';
import { estimateMemory, formatBytes } from '../../lib/plan/index.js';
import { FLAN_T5_BASE, FLAN_T5_LARGE, FLAN_T5_SMALL } from './configs.js';

const CONFIGS = { small: FLAN_T5_SMALL, base: FLAN_T5_BASE, large: FLAN_T5_LARGE } as const;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const configName = arg('config', 'base') as keyof typeof CONFIGS;
const config = CONFIGS[configName];
if (!config) throw new Error(`--config must be one of ${Object.keys(CONFIGS).join(', ')}`);
const B = Number(arg('batch', '8')),
  S = Number(arg('src-len', '512')),
  T = Number(arg('tgt-len', '256')),
  steps = Number(arg('steps', '1')),
  threads = Number(arg('threads', '2'));
const asJson = process.argv.includes('--json');
// glibc malloc in the children: `default` (its defaults); `exact`: every allocation of 128 KiB or more
// is its own mapping, returned to the kernel when freed, so the peak RSS counts the tensors live at
// the peak rather than what the heap kept of freed ones; `cli`: what bin/mentor-kd sets (one arena,
// nothing returned to the kernel).
const MALLOC_ENV: Record<string, Record<string, string>> = {
  default: {},
  exact: { MALLOC_MMAP_THRESHOLD_: String(128 * 1024) },
  cli: { MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '4294967295', MALLOC_TRIM_THRESHOLD_: '4294967295' },
};
const malloc = arg('malloc', 'default');
if (!(malloc in MALLOC_ENV)) throw new Error(`--malloc must be one of ${Object.keys(MALLOC_ENV).join(', ')}, got ${malloc}`);

/** A field of /proc/self/status in bytes (VmRSS, VmHWM). */
function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

interface ModeResult {
  mode: ActivationCheckpointing;
  parameters: number;
  runtimeBytes: number;
  staticBytes: number;
  peakBytes: number;
  gradientBytes: number;
  activationBytes: number;
  stepSeconds: number[];
  timings: { forward: number; backward: number; optimizer: number };
  loss: number;
}

async function child(mode: ActivationCheckpointing): Promise<ModeResult> {
  setNumThreads(threads);
  const runtimeBytes = status('VmRSS');
  const model = await T5Model.fromConfig(config, { seed: 0 });
  const engine = await TrainEngine.create(model, { learning_rate: 1e-4, max_grad_norm: 1, seed: 0, activationCheckpointing: mode });
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const ids = (n: number) => Int32Array.from({ length: n }, () => 2 + Math.floor(rand() * 32000));
  const batch = {
    inputIds: tensor(ids(B * S), [B, S]),
    attentionMask: tensor(new Int32Array(B * S).fill(1), [B, S]),
    labels: tensor(ids(B * T), [B, T]),
    exampleIds: [],
  };
  // A warm-up step on 2 short examples allocates the AdamW moments cheaply; the measured steps follow.
  const tiny = {
    inputIds: tensor(ids(16), [2, 8]),
    attentionMask: tensor(new Int32Array(16).fill(1), [2, 8]),
    labels: tensor(ids(16), [2, 8]),
    exampleIds: [],
  };
  await engine.step([tiny]);
  const stepSeconds: number[] = [];
  let staticBytes = 0;
  let last;
  for (let i = 0; i < steps; i++) {
    if (i === steps - 1) {
      staticBytes = status('VmRSS');
      writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
    }
    const t0 = performance.now();
    last = await engine.step([batch]);
    stepSeconds.push((performance.now() - t0) / 1000);
  }
  const peakBytes = status('VmHWM');
  const parameters = model.info().numParameters;
  engine.dispose();
  model.dispose();
  const gradientBytes = 4 * parameters;
  return {
    mode,
    parameters,
    runtimeBytes,
    staticBytes,
    peakBytes,
    gradientBytes,
    activationBytes: peakBytes - staticBytes - gradientBytes,
    stepSeconds,
    timings: last!.timings,
    loss: last!.loss,
  };
}

/**
 * --alternate N: step time only, both modes in one process, alternating none / blocks for N rounds
 * so that both see the same load on a shared machine (tuned malloc, as bench:train).
 */
async function alternate(rounds: number): Promise<void> {
  setNumThreads(threads);
  const modes: ActivationCheckpointing[] = ['none', 'blocks'];
  const engines = [];
  for (const mode of modes) {
    const model = await T5Model.fromConfig(config, { seed: 0 });
    engines.push({ mode, model, engine: await TrainEngine.create(model, { learning_rate: 1e-4, max_grad_norm: 1, seed: 0, activationCheckpointing: mode }) });
  }
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const ids = (n: number) => Int32Array.from({ length: n }, () => 2 + Math.floor(rand() * 32000));
  const batch = {
    inputIds: tensor(ids(B * S), [B, S]),
    attentionMask: tensor(new Int32Array(B * S).fill(1), [B, S]),
    labels: tensor(ids(B * T), [B, T]),
    exampleIds: [],
  };
  const times: Record<string, number[]> = { none: [], blocks: [] };
  for (let i = 0; i <= rounds; i++) {
    for (const e of i % 2 ? [...engines].reverse() : engines) {
      const t0 = performance.now();
      await e.engine.step([batch]);
      if (i > 0) times[e.mode]!.push((performance.now() - t0) / 1000); // round 0 warms up
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    JSON.stringify({
      config: configName,
      shape: { batch: B, sourceTokens: S, targetTokens: T },
      threads,
      load: loadavg()[0],
      stepSeconds: times,
      medianSeconds: { none: median(times.none!), blocks: median(times.blocks!) },
      stepTimeCost: median(times.blocks!) / median(times.none!) - 1,
    }),
  );
  for (const e of engines) {
    e.engine.dispose();
    e.model.dispose();
  }
}

if (process.argv.includes('--alternate')) {
  await alternate(Number(arg('alternate', '3')));
  process.exit(0);
}

const childMode = arg('child', '');
if (childMode) {
  console.log(JSON.stringify(await child(childMode as ActivationCheckpointing)));
  process.exit(0);
}

const modes = arg('modes', 'none,blocks').split(',') as ActivationCheckpointing[];
const loadBefore = loadavg()[0]!;
const results: (ModeResult & { estimate: ReturnType<typeof estimateMemory> })[] = [];
for (const mode of modes) {
  const env = { ...process.env };
  for (const k of ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']) delete env[k];
  Object.assign(env, MALLOC_ENV[malloc]);
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--child', mode], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`memory bench: the ${mode} run failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`);
  const measured = JSON.parse(r.stdout.trim().split('\n').pop()!) as ModeResult;
  const estimate = estimateMemory({ config, batch: B, sourceLength: S, targetLength: T, activationCheckpointing: mode });
  results.push({ ...measured, estimate });
  if (!asJson) {
    const e = estimate;
    console.error(
      `${mode}: peak ${formatBytes(measured.peakBytes)} (planner ${formatBytes(e.totalBytes)}, ${((100 * (e.totalBytes - measured.peakBytes)) / measured.peakBytes).toFixed(1)}%), ` +
        `activations ${formatBytes(measured.activationBytes)} (planner ${formatBytes(e.activationBytes)}), steps ${measured.stepSeconds.map((s) => s.toFixed(1)).join(', ')} s`,
    );
  }
}
const base = results.find((r) => r.mode === 'none');
const summary = {
  malloc,
  machine: `${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}, shared (load average ${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}): timings are noisy`,
  libtorch: native().runtime.info().torchVersion,
  threads,
  config: configName,
  shape: { batch: B, sourceTokens: S, targetTokens: T },
  steps,
  results: results.map((r) => ({
    mode: r.mode,
    parameters: r.parameters,
    peakBytes: r.peakBytes,
    staticBytes: r.staticBytes,
    runtimeBytes: r.runtimeBytes,
    activationBytes: r.activationBytes,
    lastStepSeconds: r.stepSeconds[r.stepSeconds.length - 1],
    stepSeconds: r.stepSeconds,
    timings: r.timings,
    loss: r.loss,
    planner: {
      totalBytes: r.estimate.totalBytes,
      activationBytes: r.estimate.activationBytes,
      errorOfPeak: (r.estimate.totalBytes - r.peakBytes) / r.peakBytes,
    },
    ...(base && r !== base
      ? {
          activationCut: 1 - r.activationBytes / base.activationBytes,
          stepTimeCost: r.stepSeconds[r.stepSeconds.length - 1]! / base.stepSeconds[base.stepSeconds.length - 1]! - 1,
        }
      : {}),
  })),
};
console.log(asJson ? JSON.stringify(summary) : JSON.stringify(summary, null, 2));
