/**
 * The one door into the native addon: loads it once (node-gyp-build, or the file MENTOR_KD_NATIVE
 * names), applies the environment's runtime settings (lib/runtime/env.ts) and the thread count.
 * Nothing else in lib/ loads a .node file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddonOverride, runtimeSettingsFromEnv, threadsFromEnv } from '../runtime/env.js';
import type { DevNativeBinding, NativeBinding } from './binding.js';

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'mentor-kd') return dir;
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

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const override = nativeAddonOverride();
  try {
    if (override) return require(resolve(override)) as NativeBinding;
    const gypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
    return gypBuild(packageRoot());
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
}

/** The addon (loaded once): runtime, model, kd, train, parallel, io. */
export function native(): NativeBinding {
  if (cached) return cached;
  const n = load();
  n.runtime.configure(runtimeSettingsFromEnv());
  // libtorch starts with one intra-op thread on small machines (OpenMP's default); use every
  // core unless MENTOR_KD_THREADS says otherwise. Re-applied on each worker thread natively.
  n.runtime.setNumThreads(threadsFromEnv() ?? availableParallelism());
  cached = n;
  return n;
}

function isDev(n: NativeBinding): n is DevNativeBinding {
  return typeof (n as Partial<DevNativeBinding>).dev === 'object';
}

/** The dev addon (tests, benchmarks): the same plus `dev`. Throws when the loaded addon is the shipped one. */
export function devNative(): DevNativeBinding {
  const n = native();
  if (!isDev(n)) {
    throw new Error(
      'mentor-kd: this needs the dev addon (build/Release/mentor_kd_dev.node, with the `dev` test hooks): ' +
        'build the dev addon: cmake -DMENTOR_KD_DEV=ON / npm run build:native, ' +
        'and point MENTOR_KD_NATIVE at build/Release/mentor_kd_dev.node (vitest.config.ts does)',
    );
  }
  return n;
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
