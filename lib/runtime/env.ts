/**
 * The environment variables that change mentor-kd's behaviour, read in this one module. Native
 * code reads none: the native values go over once at load through `runtime.configure()`
 * (lib/native/loader.ts), and GLOO_SOCKET_IFNAME as a ProcessGroup option.
 *
 * {@link ENVIRONMENT} lists every variable with its meaning and default (the README's table).
 * The torchrun contract (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, …) is lib/parallel/env.ts. Functions
 * take the environment as a parameter (default process.env) so callers and tests can pass their own.
 */
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
  { name: 'MENTOR_KD_THREADS', meaning: "libtorch's intra-op threads on every native thread", default: 'all cores (os.availableParallelism())' },
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
  { name: 'MENTOR_KD_CUDA_ROW_CACHE', meaning: 'CUDA KD kernels keep a row in shared memory when it fits (0 turns it off, for A/B timing)', default: 'on' },
  {
    name: 'GLOO_SOCKET_IFNAME',
    meaning: "Gloo's network interface(s), comma-separated, for multi-host data parallelism",
    default: 'unset: the interface toward MASTER_ADDR',
  },
] as const;

function isOff(v: string | undefined): boolean {
  return v === '0' || v === 'false' || v === 'off';
}

/** MENTOR_KD_NATIVE: an addon path overriding the lookup, or undefined. */
export function nativeAddonOverride(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.MENTOR_KD_NATIVE || undefined;
}

/** MENTOR_KD_THREADS when it is a positive integer, else undefined (use every core). */
export function threadsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const n = Number(env.MENTOR_KD_THREADS);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The native runtime settings the environment asks for (given to runtime.configure() at load). */
export function runtimeSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  return {
    flushDenormal: !isOff(env.MENTOR_KD_FLUSH_DENORMAL),
    kdIsa: env.MENTOR_KD_KD_ISA || 'auto',
    trainProfile: env.MENTOR_KD_TRAIN_PROFILE ?? '',
    modelProfile: env.MENTOR_KD_PROFILE ?? '',
    cudaRowCache: env.MENTOR_KD_CUDA_ROW_CACHE !== '0',
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
