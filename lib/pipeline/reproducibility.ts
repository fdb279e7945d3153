/**
 * What a run's numbers depend on besides its configuration: intra-op threads (libtorch splits
 * reductions by thread count, so float sums — and from the first steps on, losses — differ between
 * 1 and 2 threads), the CPU, libtorch's version and the BLAS it calls. Recorded in every stage
 * manifest and the run's results; a rerun in the same run directory under a different environment
 * is told that its results may differ from the stages it reuses.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname } from 'node:path';
import { runtimeInfo } from '../native/index.js';

export interface RunEnvironment {
  /** libtorch intra-op threads in use. */
  threads: number;
  cpuModel: string;
  cores: number;
  torchVersion: string;
  /** The BLAS/LAPACK libraries loaded in this process (folder/file), or what libtorch reports. */
  blas: string;
  /** ATen's parallel backend (OpenMP, native). */
  parallelBackend: string;
}

/** BLAS libraries mapped into this process (Linux), e.g. "openblas-openmp/libopenblasp-r0.3.21.so"; else libtorch's MKL line. */
function blasLibraries(parallelInfo: string): string {
  if (existsSync('/proc/self/maps')) {
    const libs = new Set<string>();
    for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
      const path = line.split(/\s+/)[5];
      if (path && /blas|mkl|blis|lapack|accelerate/i.test(basename(path))) {
        // The folder tells the implementation apart where the file name does not (openblas-openmp/libblas.so.3).
        let real = path;
        try {
          real = realpathSync(path);
        } catch {
          // unreadable link: its own name
        }
        libs.add(`${basename(dirname(real))}/${basename(real)}`);
      }
    }
    if (libs.size) return [...libs].sort().join(', ');
  }
  return /^.*MKL.*$/m.exec(parallelInfo)?.[0].trim() ?? 'unknown';
}

/** The environment of this process now (call after the thread count is set). */
export function runEnvironment(): RunEnvironment {
  const info = runtimeInfo();
  const cpu = cpus();
  return {
    threads: info.threads,
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    torchVersion: info.torchVersion,
    blas: blasLibraries(info.parallelInfo),
    parallelBackend: /ATen parallel backend: (.*)/.exec(info.parallelInfo)?.[1]?.trim() ?? 'unknown',
  };
}

/** One line per setting that differs: `threads 2 (now) vs 1 (before)`. */
export function environmentDifferences(before: Partial<RunEnvironment>, now: RunEnvironment): string[] {
  const out: string[] = [];
  for (const k of ['threads', 'cpuModel', 'torchVersion', 'blas'] as const) {
    if (before[k] !== undefined && before[k] !== now[k]) out.push(`${k} ${JSON.stringify(now[k])} (now) vs ${JSON.stringify(before[k])} (before)`);
  }
  return out;
}

/**
 * The warning for a run directory whose earlier stages were made under another environment, or
 * undefined. `before` is the environment recorded by the previous invocation.
 */
export function environmentWarning(before: Partial<RunEnvironment> | undefined, now: RunEnvironment): string | undefined {
  if (!before) return undefined;
  const diffs = environmentDifferences(before, now);
  if (!diffs.length) return undefined;
  return (
    `warning: this run directory was made under another environment (${diffs.join('; ')}): results may differ from those of the stages it reuses. ` +
    `Floating-point sums depend on the thread count and the BLAS, so training is bitwise repeatable only under the same ones; set threads to the earlier value to match.`
  );
}

/** The environment an earlier invocation recorded in `file`, or undefined. */
export function readEnvironment(file: string): Partial<RunEnvironment> | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<RunEnvironment>;
  } catch {
    return undefined; // a torn file: no comparison, it is rewritten
  }
}

/** One line for reports: `2 threads on AMD EPYC (2 cores), libtorch 1.13.0, BLAS openblas-openmp/libopenblasp-r0.3.21.so, OpenMP`. */
export function describeEnvironment(e: RunEnvironment): string {
  return `${e.threads} thread${e.threads === 1 ? '' : 's'} on ${e.cpuModel} (${e.cores} cores), libtorch ${e.torchVersion}, BLAS ${e.blas}, ${e.parallelBackend}`;
}
