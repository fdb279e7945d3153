/**
 * Memory benchmark: peak resident memory and step time of full training steps (forward, fused
 * loss, backward, clipping, AdamW through the native train step) with each activation-checkpointing
 * mode, beside the memory planner's estimate (lib/plan). Each mode runs in its own child process
 * (peak RSS only grows within a process), with glibc malloc's defaults unless --malloc says
 * otherwise (exact: RSS follows the live tensors; cli: bin/mentor-kd's settings; see below).
 *
 *   npx tsx scripts/bench/memory.ts [--config small|base|large] [--batch 8] [--src-len 512] [--tgt-len 256]
 *                                   [--modes none,blocks] [--steps 1] [--threads 2] [--malloc default|exact|cli|inherit] [--json]
 *   ... --alternate 3      step time only: none and blocks alternating in one process (same load)
 *   ... --ranks 2 --sharding none,zero1,zero2 [--checkpointing none|blocks] [--malloc exact|cli|inherit]
 *                          data parallelism: per sharding stage, `ranks` Gloo workers (started by
 *                          lib/parallel/launch, cores divided among them) each train the batch
 *                          (per_device_train_batch_size) with train.sharding; each rank's peak is reported
 *
 * Per mode: a warm-up step on two 8-token examples allocates the AdamW moments; then `steps`
 * full-size steps. `static` is the RSS before the last one (weights, AdamW moments, the runtime;
 * gradients are freed after each step); `peak` the highest RSS during it (VmHWM, reset before it
 * via /proc/self/clear_refs); activations = peak - static - gradient bytes (fp32, one per parameter).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { TrainEngine } from '../../lib/train/engine.js';
import { SHARDING, type ActivationCheckpointing, type Sharding } from '../../lib/config/train-settings.js';
import { launch } from '../../lib/parallel/launch.js';
import { estimateMemory, formatBytes } from '../../lib/plan/index.js';
import { FLAN_T5_BASE, FLAN_T5_LARGE, FLAN_T5_SMALL } from './configs.js';
import { cliMallocEnv } from './cli-malloc.js';
import { measureStep, statusBytes } from './measure-step.js';
import { randomT5Rows } from './random-rows.js';

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
// the peak rather than what the heap kept of freed ones; `cli`: what bin/mentor-kd sets (read from
// it); `inherit`: whatever this process was started with.
const MALLOC_ENV: Record<string, Record<string, string>> = {
  default: {},
  exact: { MALLOC_MMAP_THRESHOLD_: String(128 * 1024) },
  cli: cliMallocEnv(),
  inherit: {},
};
const malloc = arg('malloc', 'default');
if (!(malloc in MALLOC_ENV)) throw new Error(`--malloc must be one of ${Object.keys(MALLOC_ENV).join(', ')}, got ${malloc}`);

interface ModeResult {
  mode: ActivationCheckpointing;
  parameters: number;
  runtimeBytes: number;
  staticBytes: number;
  peakBytes: number;
  gradientBytes: number;
  activationBytes: number;
  stepSeconds: number[];
  /** CPU seconds (user, system) and minor page faults of the last step: the allocator's cost shows in system time and faults. */
  cpu: { user: number; system: number; minorFaults: number };
  timings: { forward: number; backward: number; optimizer: number };
  loss: number;
}

async function child(mode: ActivationCheckpointing): Promise<ModeResult> {
  setNumThreads(threads);
  const runtimeBytes = statusBytes('VmRSS');
  const model = await T5Model.fromConfig(config, { seed: 0 });
  const engine = await TrainEngine.create(model, { learning_rate: 1e-4, max_grad_norm: 1, seed: 0, activationCheckpointing: mode });
  const rows = randomT5Rows(12345);
  const batch = rows(B, S, T);
  // A warm-up step on 2 short examples allocates the AdamW moments cheaply; the measured steps follow.
  const tiny = rows(2, 8, 8);
  await engine.step([tiny]);
  const stepSeconds: number[] = [];
  for (let i = 0; i < steps - 1; i++) {
    const t0 = performance.now();
    await engine.step([batch]);
    stepSeconds.push((performance.now() - t0) / 1000);
  }
  const { result: last, staticBytes, peakBytes, stepSeconds: lastSeconds, cpu } = await measureStep(engine, batch);
  stepSeconds.push(lastSeconds);
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
    cpu,
    timings: last.timings,
    loss: last.loss,
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
  const batch = randomT5Rows(12345)(B, S, T);
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

const checkpointing = arg('checkpointing', 'none') as ActivationCheckpointing;

interface RankResult {
  sharding: Sharding;
  rank: number;
  threads: number;
  staticBytes: number;
  peakBytes: number;
  optimizerStateBytes: number;
  stepSeconds: number;
  loss: number;
}

/**
 * One data-parallel worker (--rank-child <sharding>): the training engine's step under train.sharding
 * on `batch` examples of this rank, after a warm-up step on two 8-token examples (it allocates the
 * AdamW state of this rank's slice); the peak RSS of the measured step (VmHWM reset before it).
 */
async function rankChild(sharding: Sharding, out: string): Promise<void> {
  const { ProcessGroup } = await import('../../lib/parallel/process-group.js');
  const { DataParallel } = await import('../../lib/parallel/data-parallel.js');
  const pg = await ProcessGroup.init();
  const perRank = Math.max(1, Math.floor(threads / pg.worldSize)); // the cores divided among the ranks, as launch does
  setNumThreads(perRank);
  const model = await T5Model.fromConfig(config, { seed: 0 });
  const dp = DataParallel.create(pg, model);
  await dp.broadcastParameters(0);
  const engine = await TrainEngine.create(model, { learning_rate: 1e-4, max_grad_norm: 1, seed: 0, sharding, activationCheckpointing: checkpointing });
  engine.setDistributed(dp);
  const rows = randomT5Rows(12345 + 7919 * pg.rank);
  const warm = await engine.step([rows(2, 8, 8)]);
  if (warm.status !== 'ok') throw new Error(`rank ${pg.rank}: the warm-up step was ${warm.status}`);
  const batch = rows(B, S, T);
  await pg.barrier();
  const { result: last, staticBytes, peakBytes, stepSeconds } = await measureStep(engine, batch);
  if (last.status !== 'ok') throw new Error(`rank ${pg.rank}: the measured step was ${last.status}`);
  const result: RankResult = {
    sharding,
    rank: pg.rank,
    threads: perRank,
    staticBytes,
    peakBytes,
    optimizerStateBytes: engine.info().optimizerStateBytes,
    stepSeconds,
    loss: last.loss,
  };
  writeFileSync(join(out, `rank${pg.rank}.json`), JSON.stringify(result));
  engine.dispose();
  model.dispose();
  await pg.destroy();
}

/** --ranks N --sharding a,b: each stage on N launched workers, each rank's peak beside the plan. */
async function rankRuns(ranks: number, stages: Sharding[]): Promise<void> {
  const env = { ...process.env };
  if (malloc !== 'inherit') for (const k of ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES']) delete env[k];
  Object.assign(env, MALLOC_ENV[malloc]);
  console.error(
    `${configName}: ${ranks} ranks × batch ${B}, ${S}/${T} tokens, fp32, checkpointing ${checkpointing}, ${malloc} malloc; ${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}, ` +
      `load ${loadavg()[0]!.toFixed(1)} (shared: timings are noisy), libtorch ${native().runtime.info().torchVersion}`,
  );
  for (const sharding of stages) {
    const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-memory-ranks-'));
    try {
      const loadBefore = loadavg()[0]!;
      const res = await launch({
        nprocPerNode: ranks,
        command: process.execPath,
        args: [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--rank-child', sharding, '--out', dir],
        env,
      });
      if (res.exitCode !== 0) throw new Error(`memory bench: sharding ${sharding}: ${res.message}`);
      const measured = Array.from({ length: ranks }, (_, r) => JSON.parse(readFileSync(join(dir, `rank${r}.json`), 'utf8')) as RankResult);
      const e = estimateMemory({ config, batch: B, sourceLength: S, targetLength: T, ranks, sharding, activationCheckpointing: checkpointing });
      const error = (m: RankResult) => (e.totalBytes - m.peakBytes) / m.peakBytes;
      console.log(
        JSON.stringify({
          config: configName,
          malloc,
          ranks,
          sharding,
          activationCheckpointing: checkpointing,
          shape: { batch: B, sourceTokens: S, targetTokens: T },
          load: [loadBefore, loadavg()[0]],
          plan: e,
          measured: measured.map((m) => ({ ...m, planError: error(m) })),
        }) +
          `\n# ${sharding}: plan ${formatBytes(e.totalBytes)} per rank (optimizer ${formatBytes(e.optimizerBytes)}, gradients ${formatBytes(e.gradientBytes)}); ` +
          measured
            .map(
              (m) =>
                `rank ${m.rank} peak ${formatBytes(m.peakBytes)} (${(100 * error(m)).toFixed(1)}%; before the step ${formatBytes(m.staticBytes)}, ` +
                `optimizer state ${formatBytes(m.optimizerStateBytes)}, step ${m.stepSeconds.toFixed(0)} s noisy)`,
            )
            .join('; '),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const rankChildStage = arg('rank-child', '');
if (rankChildStage) {
  await rankChild(rankChildStage as Sharding, arg('out', ''));
  process.exit(0);
}
if (process.argv.includes('--ranks')) {
  const ranks = Number(arg('ranks', '2'));
  if (!Number.isInteger(ranks) || ranks < 2) throw new Error(`--ranks must be an integer >= 2, got ${arg('ranks', '')}`);
  const stages = arg('sharding', 'none,zero1,zero2').split(',');
  for (const x of stages)
    if (!(SHARDING as readonly string[]).includes(x)) throw new Error(`--sharding takes ${SHARDING.join(', ')} (comma-separated), got ${x}`);
  await rankRuns(ranks, stages as Sharding[]);
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
  if (malloc !== 'inherit') for (const k of ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES']) delete env[k];
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
        `before the step ${formatBytes(measured.staticBytes)} (planner ${formatBytes(e.weightBytes + e.optimizerBytes + e.runtimeBytes)}), ` +
        `activations ${formatBytes(measured.activationBytes)} (planner ${formatBytes(e.activationBytes)}), steps ${measured.stepSeconds.map((s) => s.toFixed(1)).join(', ')} s ` +
        `(last: CPU ${measured.cpu.user.toFixed(1)} s user + ${measured.cpu.system.toFixed(1)} s system, ${(measured.cpu.minorFaults / 1e6).toFixed(2)} M page faults)`,
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
