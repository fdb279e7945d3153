/**
 * `sweep --jobs N`: the sweep's grid points run N at a time, each (task, seed) in a child process
 * of its own — the same command restricted to that task and seed — after which the sweep runs
 * once more in this process, where every stage is reused from the run directories, to write the
 * tables. Processes rather than concurrent pipelines in one process: libtorch's default random
 * generator (dropout, sampling) is process-wide, so two trainings in one process would draw from
 * one stream in an order set by timing, and results would not repeat.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { TaskName } from '../tasks/registry.js';

/** One child's share of the grid: a seed, and a task when the sweep names tasks. */
export interface SweepUnit {
  task?: TaskName;
  seed: number;
}

/** The (task, seed) pairs of a grid, task by task (each pair is one run directory). */
export function sweepUnits(grid: { seeds: readonly number[]; tasks?: readonly TaskName[] }): SweepUnit[] {
  const tasks: (TaskName | undefined)[] = grid.tasks?.length ? [...grid.tasks] : [undefined];
  return tasks.flatMap((task) => grid.seeds.map((seed) => (task ? { task, seed } : { seed })));
}

/**
 * A child's arguments: the command's own, then flags that override them (commander keeps the last
 * value of a flag): this unit's seed and task, one job, no sweep report (this process writes it),
 * and the intra-op thread count every process of the sweep uses.
 */
export function unitArgs(args: readonly string[], unit: SweepUnit, threads: number): string[] {
  return [...args, '--seeds', String(unit.seed), ...(unit.task ? ['--tasks', unit.task] : []), '--jobs', '1', '--no-report', '--set', `threads=${threads}`];
}

/** `coin_flip seed 3`: how logs name a unit. */
export const unitName = (u: SweepUnit): string => `${u.task ? `${u.task} ` : ''}seed ${u.seed}`;

export interface JobRunner {
  /** Runs one unit to completion; resolves to its exit code. */
  (unit: SweepUnit): Promise<number>;
  /** Sends `signal` to every unit running now (the sweep was interrupted). */
  signal?: (signal: NodeJS.Signals) => void;
}

/** The signals that stop a sweep: a terminal's Ctrl-C, `kill`, a closed terminal. */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface RunUnitsOptions {
  /** After a stop signal, how long the running units have to exit before they get SIGKILL (default 30 s). */
  graceMs?: number;
}

/**
 * Runs the units `jobs` at a time, in order. Every unit runs even when one fails (the others'
 * results are kept in their run directories); rejects afterwards naming the failed ones.
 *
 * SIGINT / SIGTERM / SIGHUP while units run: no further unit starts, the signal goes to the running
 * ones (each stops as a run does: whole files, checkpoints to resume from), and once every one has
 * exited (SIGKILL for any still running after `graceMs`) the signal is raised again here, for this
 * process's own handlers (the CLI's "interrupted" note) or, without one, the default action — so no
 * child outlives the sweep, and none is orphaned.
 */
export async function runUnits(
  units: readonly SweepUnit[],
  jobs: number,
  run: JobRunner,
  log: (line: string) => void = () => {},
  options: RunUnitsOptions = {},
): Promise<void> {
  if (!(Number.isInteger(jobs) && jobs >= 1)) throw new Error(`sweep: --jobs must be a positive integer, got ${jobs}`);
  const failed: string[] = [];
  let next = 0;
  let done = 0;
  let running = 0;
  let interrupted: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const graceMs = options.graceMs ?? 30_000;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!interrupted) {
      log(`[sweep] received ${signal}: forwarding it to ${running} running grid point(s) and waiting for them to stop`);
      killTimer = setTimeout(() => {
        log(`[sweep] grid points still running ${graceMs} ms after ${signal}: sending SIGKILL`);
        run.signal?.('SIGKILL');
      }, graceMs);
    }
    interrupted ??= signal;
    run.signal?.(signal);
  };
  // This process's own handlers wait until the children have stopped (they may exit at once).
  const saved = new Map(STOP_SIGNALS.map((sig) => [sig, process.rawListeners(sig)]));
  for (const sig of STOP_SIGNALS) {
    process.removeAllListeners(sig);
    process.on(sig, onSignal);
  }
  const worker = async () => {
    while (next < units.length && !interrupted) {
      const unit = units[next++]!;
      const t0 = performance.now();
      log(`[sweep] ${unitName(unit)}: started`);
      let code: number;
      running++;
      try {
        code = await run(unit);
      } catch (err) {
        log(`[sweep] ${unitName(unit)}: ${(err as Error).message}`);
        code = -1;
      }
      running--;
      done++;
      if (code !== 0) failed.push(`${unitName(unit)} (exit ${code})`);
      log(`[sweep] ${unitName(unit)}: ${code === 0 ? 'done' : 'FAILED'} in ${((performance.now() - t0) / 1000).toFixed(0)} s (${done}/${units.length})`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(jobs, units.length) }, worker));
  } finally {
    clearTimeout(killTimer);
    for (const sig of STOP_SIGNALS) {
      process.off(sig, onSignal);
      for (const l of saved.get(sig)!) process.on(sig, l as (signal: NodeJS.Signals) => void);
    }
  }
  if (interrupted) {
    log(`[sweep] every running grid point has stopped; ${units.length - done} of ${units.length} did not finish`);
    process.kill(process.pid, interrupted);
    // A handler runs on a later turn of the event loop: give it that turn rather than go on to the tables.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    throw new Error(`sweep: stopped by ${interrupted}; the same command resumes every grid point from its run directory`);
  }
  if (failed.length) throw new Error(`sweep: ${failed.length} of ${units.length} grid points failed: ${failed.join(', ')}; their output above says why`);
}

/**
 * A JobRunner that starts this CLI again (`node <cli> <args>`, or `command`) with the unit's
 * arguments, its output passed through line by line behind `[<task> seed <n>]`.
 */
export function childProcessRunner(
  args: readonly string[],
  threads: number,
  command: readonly string[] = [process.execPath, ...process.execArgv, process.argv[1]!],
): JobRunner {
  const children = new Set<ChildProcess>();
  const runner: JobRunner = (unit) =>
    new Promise((resolve, reject) => {
      const child = spawn(command[0]!, [...command.slice(1), ...unitArgs(args, unit, threads)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      const prefix = `[${unitName(unit)}] `;
      for (const [from, to] of [
        [child.stdout, process.stdout],
        [child.stderr, process.stderr],
      ] as const) {
        let rest = '';
        from.setEncoding('utf8');
        from.on('data', (chunk: string) => {
          const lines = (rest + chunk).split('\n');
          rest = lines.pop()!;
          for (const l of lines) to.write(prefix + l + '\n');
        });
        from.on('end', () => rest && to.write(prefix + rest + '\n'));
      }
      child.on('error', (err) => {
        children.delete(child);
        reject(err);
      });
      child.on('close', (code, signal) => {
        children.delete(child);
        resolve(code ?? (signal ? 128 : 1));
      });
    });
  runner.signal = (signal) => {
    for (const child of children) child.kill(signal);
  };
  return runner;
}
