/**
 * The environment variables that change mentor-kd's behaviour, read in this one module. Native
 * code reads none: the native values go over once at load through `runtime.configure()`
 * (lib/native/loader.ts), and GLOO_SOCKET_IFNAME as a ProcessGroup option.
 *
 * {@link ENVIRONMENT} lists every variable with its meaning and default (the README's table).
 * The torchrun contract (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, …) is lib/parallel/env.ts. Functions
 * take the environment as a parameter (default process.env) so callers and tests can pass their own.
 */
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import type { RuntimeSettings } from '../native/binding.js';

export interface EnvVar {
  name: string;
  meaning: string;
  default: string;
}

/** Every behaviour-changing environment variable (see the README). */
export const ENVIRONMENT: readonly EnvVar[] = [
  {
    name: 'MENTOR_KD_NATIVE',
    meaning: 'path of the native addon to load instead of build/Release/mentor_kd.node (tests point it at the dev addon)',
    default: 'unset: node-gyp-build finds build/Release/mentor_kd.node',
  },
  {
    name: 'MENTOR_KD_THREADS',
    meaning: "libtorch's intra-op threads on every native thread: a positive integer, at most the machine's cores (an Error otherwise)",
    default: 'all cores (os.availableParallelism())',
  },
  {
    name: 'MENTOR_KD_THREADS_FORCE',
    meaning: 'allow MENTOR_KD_THREADS (and setNumThreads / the pipeline `threads`) above the core count (1, true or on)',
    default: 'unset: more threads than cores is an Error',
  },
  {
    name: 'MENTOR_KD_FLUSH_DENORMAL',
    meaning: 'flush fp32 denormals to zero on native threads (0, false or off turns it off)',
    default: 'on',
  },
  {
    name: 'MENTOR_KD_KD_ISA',
    meaning: 'CPU kernel set of the KD loss: auto, avx512, avx2 or sse2 (a bad or unsupported name keeps auto)',
    default: 'auto (the best the CPU has)',
  },
  { name: 'MENTOR_KD_TRAIN_PROFILE', meaning: 'write a chrome://tracing profile of each train step to this file (the last step wins)', default: 'unset: off' },
  { name: 'MENTOR_KD_PROFILE', meaning: 'write a chrome://tracing profile of each model forward call to this file', default: 'unset: off' },
  {
    name: 'MENTOR_KD_STATIC_GENERATE',
    meaning: 'greedy generate() on the static batched path instead of the generation engine (1; for A/B comparisons)',
    default: 'unset: the engine for float32 CPU models',
  },
  {
    name: 'MENTOR_KD_LARGE_BLOCKS',
    meaning:
      'CPU tensors of 16 MiB or more mapped on their own (2 MiB-aligned, transparent huge pages) and returned to the kernel when freed, so they leave no holes in the heap (0, false or off: all through malloc; native/runtime/large_block_allocator.h)',
    default: 'on',
  },
  { name: 'MENTOR_KD_CUDA_ROW_CACHE', meaning: 'CUDA KD kernels keep a row in shared memory when it fits (0 turns it off, for A/B timing)', default: 'on' },
  {
    name: 'MENTOR_KD_DIST_BACKEND',
    meaning: 'process-group backend for data-parallel workers: gloo or nccl',
    default: 'nccl when CUDA is available, else gloo',
  },
  {
    name: 'MENTOR_KD_DIST_TIMEOUT_MS',
    meaning: 'collective timeout of the process group, in ms (a dead or hung rank is named after it)',
    default: '1800000 (30 min)',
  },
  { name: 'OPENAI_BASE_URL', meaning: "the teacher client's endpoint when none is given (teacher.url / --base-url)", default: 'https://api.openai.com/v1' },
  {
    name: 'OPENAI_API_KEY',
    meaning: "the teacher's API key; another variable can be named with teacher.apiKeyEnv / --api-key-env. Read from the environment only",
    default: 'unset: a placeholder key (local servers)',
  },
  { name: 'MENTOR_KD_CLI_MAIN', meaning: 'run lib/cli.ts as the command even when imported (1; tests that spawn it through tsx)', default: 'unset' },
  { name: 'HF_HOME', meaning: "Hugging Face's home folder; the Hub cache is its hub/ unless HF_HUB_CACHE says otherwise", default: '~/.cache/huggingface' },
  {
    name: 'HF_HUB_CACHE',
    meaning: "where Hub models are cached, in huggingface_hub's layout (models--org--name/{blobs,snapshots,refs}; Python reuses it)",
    default: '$HF_HOME/hub',
  },
  { name: 'HF_ENDPOINT', meaning: 'the Hub server model ids are downloaded from', default: 'https://huggingface.co' },
  {
    name: 'HF_TOKEN',
    meaning: 'the Hub access token for private and gated models; read from the environment only, never written',
    default: 'unset: anonymous',
  },
  { name: 'HF_HUB_OFFLINE', meaning: 'Hub model ids are read from the cache only (1, true or on); a model not cached is an Error', default: 'unset: online' },
  {
    name: 'MENTOR_KD_LOG_INTERVAL',
    meaning: 'seconds between plain progress lines when stderr is not a terminal (nohup, Slurm, CI): step, loss, tok/s, ETA',
    default: '30',
  },
  {
    name: 'GLOO_SOCKET_IFNAME',
    meaning: "Gloo's network interface(s), comma-separated, for multi-host data parallelism",
    default: 'unset: the interface toward MASTER_ADDR',
  },
] as const;

function isOff(v: string | undefined): boolean {
  return v === '0' || v === 'false' || v === 'off';
}

/** MENTOR_KD_STATIC_GENERATE=1: greedy generate() keeps the static path (no generation engine). */
export function staticGenerateFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MENTOR_KD_STATIC_GENERATE === '1';
}

/** A secret (the teacher's API key) from the environment variable `name`, trimmed; undefined when unset or blank. */
export function secretFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[name];
  return v && v.trim() !== '' ? v.trim() : undefined;
}

/** OPENAI_BASE_URL, or undefined. */
export function openaiBaseUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.OPENAI_BASE_URL || undefined;
}

/** MENTOR_KD_CLI_MAIN=1: lib/cli.ts runs the command although it is not the entry script. */
export function cliMainFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MENTOR_KD_CLI_MAIN === '1';
}

/** MENTOR_KD_NATIVE: an addon path overriding the lookup, or undefined. */
export function nativeAddonOverride(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.MENTOR_KD_NATIVE || undefined;
}

function isOn(v: string | undefined): boolean {
  return v === '1' || v === 'true' || v === 'on';
}

/** MENTOR_KD_THREADS_FORCE: more intra-op threads than cores are allowed. */
export function threadsForcedFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return isOn(env.MENTOR_KD_THREADS_FORCE);
}

/**
 * A thread count checked before it reaches libtorch: a positive integer and at most `cores` (the
 * machine's, by default) unless `force`. `setting` names where the value came from in the Error
 * (`MENTOR_KD_THREADS`, `threads` in a config, `setNumThreads`). A count far above the cores only
 * oversubscribes them (100 000 threads: ~1 600 OS threads, load ~700 and no progress), so it is
 * refused; `force` (MENTOR_KD_THREADS_FORCE=1 for the environment and the pipeline) is the escape hatch.
 */
export function checkThreads(n: unknown, setting: string, options: { force?: boolean; cores?: number } = {}): number {
  const cores = options.cores ?? availableParallelism();
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new Error(`${setting}: threads must be a positive integer, got ${typeof n === 'number' ? n : JSON.stringify(n)}`);
  }
  if (n > cores && !options.force) {
    throw new Error(
      `${setting}: ${n} threads is more than this machine's ${cores} cores (oversubscribed threads only slow libtorch down); ` +
        `use at most ${cores}, or force it (MENTOR_KD_THREADS_FORCE=1, or setNumThreads(n, { force: true }))`,
    );
  }
  return n;
}

/**
 * MENTOR_KD_THREADS as a checked thread count ({@link checkThreads}), undefined when unset or empty
 * (use every core). A value that is not a positive integer, or above the cores without
 * MENTOR_KD_THREADS_FORCE, is an Error naming the variable.
 */
export function threadsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.MENTOR_KD_THREADS;
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 1) throw new Error(`MENTOR_KD_THREADS=${JSON.stringify(raw)}: threads must be a positive integer`);
  return checkThreads(n, `MENTOR_KD_THREADS=${raw.trim()}`, { force: threadsForcedFromEnv(env) });
}

/** The native runtime settings the environment asks for (given to runtime.configure() at load). */
export function runtimeSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  return {
    flushDenormal: !isOff(env.MENTOR_KD_FLUSH_DENORMAL),
    kdIsa: env.MENTOR_KD_KD_ISA || 'auto',
    trainProfile: env.MENTOR_KD_TRAIN_PROFILE ?? '',
    modelProfile: env.MENTOR_KD_PROFILE ?? '',
    cudaRowCache: env.MENTOR_KD_CUDA_ROW_CACHE !== '0',
    largeBlocks: !isOff(env.MENTOR_KD_LARGE_BLOCKS),
  };
}

/** GLOO_SOCKET_IFNAME ('' when unset): Gloo's interfaces, passed to ProcessGroup.create. */
export function glooSocketIfname(env: NodeJS.ProcessEnv = process.env): string {
  return env.GLOO_SOCKET_IFNAME ?? '';
}

/** MENTOR_KD_DIST_BACKEND, or undefined when unset/empty (ProcessGroup.init checks the value). */
export function distBackendFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.MENTOR_KD_DIST_BACKEND || undefined;
}

/** MENTOR_KD_DIST_TIMEOUT_MS as a positive integer, undefined when unset; throws naming the variable otherwise. */
export function distTimeoutMsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.MENTOR_KD_DIST_TIMEOUT_MS;
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`MENTOR_KD_DIST_TIMEOUT_MS=${JSON.stringify(raw)} is not a positive integer`);
  return v;
}

/** Where and how Hub model ids are fetched (huggingface_hub's variables). */
export interface HubSettings {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
}

/** HF_HOME / HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE, with huggingface_hub's defaults. */
export function hubSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const home = env.HF_HOME || join(homedir(), '.cache', 'huggingface');
  return {
    cacheDir: env.HF_HUB_CACHE || join(home, 'hub'),
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    token: env.HF_TOKEN && env.HF_TOKEN.trim() !== '' ? env.HF_TOKEN.trim() : undefined,
    offline: isOn(env.HF_HUB_OFFLINE?.toLowerCase()) || env.HF_HUB_OFFLINE?.toLowerCase() === 'yes',
  };
}

/** MENTOR_KD_LOG_INTERVAL: seconds between plain progress lines without a terminal (default 30); an Error naming the variable when not a positive number. */
export function logIntervalSecondsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MENTOR_KD_LOG_INTERVAL;
  if (raw === undefined || raw.trim() === '') return 30;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`MENTOR_KD_LOG_INTERVAL=${JSON.stringify(raw)} is not a positive number of seconds`);
  return v;
}
