/**
 * The one door into the native addon: loads it with node-gyp-build and declares
 * its type. Nothing else in lib/ imports the .node file.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KdBinding } from './kd/index.js';

/** A tensor crossing the JS/native boundary. */
export interface NativeTensor {
  data: Int32Array | BigInt64Array | Float32Array | Float64Array | Uint8Array;
  shape: number[];
  dtype?: string;
}

export interface RuntimeInfo {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaCompiled: boolean;
  threads: number;
  /** Denormals flushed to zero on native threads (MENTOR_KD_FLUSH_DENORMAL=0 turns it off; native/napi/runtime.h says why). */
  flushDenormal: boolean;
  parallelInfo: string;
}

/** Everything the addon exports. Grows as bindings are added (see native/bindings/). */
export interface NativeBinding {
  bindings: string[];
  runtimeInfo(): RuntimeInfo;
  setNumThreads(n: number): void;
  /** Seeds libtorch's default CPU generator (dropout masks, unseeded sampling). */
  manualSeed(seed: number): void;
  kd: KdBinding;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [name: string]: any;
}

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'mentor-kd') return dir;
      } catch {
        /* keep walking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('mentor-kd: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let cached: NativeBinding | undefined;

/** Loads the addon once. MENTOR_KD_NATIVE=/path/to/mentor_kd.node overrides the lookup. */
export function native(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const override = process.env.MENTOR_KD_NATIVE;
  try {
    if (override) {
      cached = require(resolve(override)) as NativeBinding;
    } else {
      const load = require('node-gyp-build') as (dir: string) => NativeBinding;
      cached = load(packageRoot());
    }
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    throw new Error(
      `mentor-kd: the native addon could not be loaded (${cause}).\n` +
        `Build it with \`npm run setup\` (installs libtorch and OpenBLAS when missing, then builds), ` +
        `or \`npm run build:native\` if libtorch is already installed (set Torch_DIR or LIBTORCH to use your own). ` +
        `If it built but fails to load, libtorch's shared libraries are probably not on the loader path: ` +
        `add libtorch's lib/ folder to LD_LIBRARY_PATH.`,
      { cause: err },
    );
  }
  // libtorch starts with one intra-op thread on small machines (OpenMP's default); use every
  // core unless MENTOR_KD_THREADS says otherwise. Re-applied on each worker thread natively.
  const threads = Number(process.env.MENTOR_KD_THREADS) || availableParallelism();
  cached!.setNumThreads(threads);
  return cached!;
}

/** Seeds libtorch's default CPU generator: dropout masks and unseeded sampling become reproducible. */
export function manualSeed(seed: number): void {
  native().manualSeed(seed);
}

/** Sets libtorch's intra-op thread count for all later native work. */
export function setNumThreads(n: number): void {
  native().setNumThreads(n);
}

/**
 * Runs a native call, and on failure rethrows with the caller's JS stack so the error
 * points at user code rather than at a libuv callback (as sharp does).
 */
export async function callNative<T>(fn: () => Promise<T>): Promise<T> {
  const here = new Error();
  try {
    return await fn();
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    if (here.stack) e.stack = `Error: ${e.message}\n${here.stack.split('\n').slice(2).join('\n')}`;
    throw e;
  }
}

/** Synchronous variant of callNative. */
export function callNativeSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof Error ? err : new Error(String(err));
  }
}
