/**
 * LoRA memory benchmark: trainable parameters and peak resident memory of one full training step
 * (forward, fused loss, backward, clipping, AdamW through the native train step) with LoRA
 * adapters against full fine-tuning, beside the memory planner's estimate (lib/plan). Each mode
 * runs in its own child process (peak RSS only grows within a process) with glibc malloc's defaults
 * unless --malloc says otherwise (exact: RSS follows the live tensors; cli: bin/mentor-kd's settings).
 *
 *   npx tsx scripts/bench/lora-memory.ts [--config small|base|large] [--batch 2] [--src-len 256] [--tgt-len 128]
 *                                        [--modes lora-qv,lora-all,full] [--r 16] [--threads 2] [--malloc default|exact|cli|inherit]
 *
 * Modes: full (every parameter trains), lora-qv (r on q, v), lora-all (r on q, k, v, o, wi_0, wi_1, wo).
 * Per mode: a warm-up step on two 8-token examples allocates the AdamW state; then one full-size
 * step, whose peak RSS (VmHWM, reset before it via /proc/self/clear_refs) is reported.
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { TrainEngine } from '../../lib/train/engine.js';
import { addLora, trainableParameterCount } from '../../lib/model/lora.js';
import { loraSettingsSchema, type LoraSettings } from '../../lib/model/lora-settings.js';
import { estimateMemory, formatBytes } from '../../lib/plan/index.js';
import { FLAN_T5_BASE, FLAN_T5_LARGE, FLAN_T5_SMALL } from './configs.js';
import { cliMallocEnv } from './cli-malloc.js';
import { measureStep } from './measure-step.js';
import { randomT5Rows } from './random-rows.js';

const CONFIGS = { small: FLAN_T5_SMALL, base: FLAN_T5_BASE, large: FLAN_T5_LARGE } as const;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const configName = arg('config', 'large') as keyof typeof CONFIGS;
const config = CONFIGS[configName];
if (!config) throw new Error(`--config must be one of ${Object.keys(CONFIGS).join(', ')}`);
const B = Number(arg('batch', '2')),
  S = Number(arg('src-len', '256')),
  T = Number(arg('tgt-len', '128')),
  r = Number(arg('r', '16')),
  threads = Number(arg('threads', '2'));
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

const MODES: Record<string, LoraSettings | undefined> = {
  full: undefined,
  'lora-qv': loraSettingsSchema.parse({ r, lora_alpha: 2 * r, target_modules: ['q', 'v'] }),
  'lora-all': loraSettingsSchema.parse({ r, lora_alpha: 2 * r, target_modules: ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo'] }),
};

interface ModeResult {
  mode: string;
  parameters: number;
  trainable: number;
  staticBytes: number;
  peakBytes: number;
  stepSeconds: number;
  loss: number;
}

async function child(mode: string): Promise<ModeResult> {
  setNumThreads(threads);
  const model = await T5Model.fromConfig(config, { seed: 0 });
  const lora = MODES[mode];
  if (lora) addLora(model, lora, 0);
  const engine = await TrainEngine.create(model, { learning_rate: 1e-4, max_grad_norm: 1, seed: 0 });
  const rows = randomT5Rows(12345);
  await engine.step([rows(2, 8, 8)]);
  const batch = rows(B, S, T);
  const { result: last, staticBytes, peakBytes, stepSeconds } = await measureStep(engine, batch);
  const result = {
    mode,
    parameters: model.info().numParameters,
    trainable: trainableParameterCount(model),
    staticBytes,
    peakBytes,
    stepSeconds,
    loss: last.loss,
  };
  engine.dispose();
  model.dispose();
  return result;
}

const childMode = arg('child', '');
if (childMode) {
  console.log(JSON.stringify(await child(childMode)));
  process.exit(0);
}

const modes = arg('modes', 'lora-qv,lora-all,full').split(',');
console.error(
  `${configName}: batch ${B}, ${S}/${T} tokens, r ${r}, ${threads} threads, ${malloc} malloc; ${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}, load ${loadavg()[0]!.toFixed(1)} (shared: timings are noisy)`,
);
for (const mode of modes) {
  if (!(mode in MODES)) throw new Error(`--modes: unknown mode ${mode} (${Object.keys(MODES).join(', ')})`);
  const env = { ...process.env };
  if (malloc !== 'inherit') for (const k of ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES']) delete env[k];
  Object.assign(env, MALLOC_ENV[malloc]);
  const run = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--child', mode], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  if (run.status !== 0) {
    console.error(`${mode}: failed (exit ${run.status}${run.signal ? `, ${run.signal}` : ''})`);
    continue;
  }
  const m = JSON.parse(run.stdout.trim().split('\n').pop()!) as ModeResult;
  const e = estimateMemory({ config, batch: B, sourceLength: S, targetLength: T, lora: MODES[mode] });
  console.log(
    JSON.stringify({ ...m, plannedTrainable: e.trainableParameters, plannedPeakBytes: e.totalBytes, load: loadavg()[0] }) +
      `\n# ${mode}: trainable ${(m.trainable / 1e6).toFixed(2)} M of ${(m.parameters / 1e6).toFixed(1)} M, peak ${formatBytes(m.peakBytes)} ` +
      `(before the step ${formatBytes(m.staticBytes)}; plan ${formatBytes(e.totalBytes)}, ${((100 * (e.totalBytes - m.peakBytes)) / m.peakBytes).toFixed(1)}%), step ${m.stepSeconds.toFixed(0)} s (noisy)`,
  );
}
