/**
 * The sweep at the size: the demo-sweep preset (the demo's settings at half the training,
 * one intra-op thread) and `sweep --jobs`, which runs grid points in processes of their own and
 * then writes the tables from the stages they left — the same numbers as one point at a time.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_SWEEP_EPOCHS, defaultConfig } from '../lib/config/defaults.js';
import { resolveConfig } from '../lib/config/load.js';
import { runUnits, sweepUnits, unitArgs, type SweepUnit } from '../lib/pipeline/sweep-jobs.js';
import type { SweepCell } from '../lib/pipeline/sweep.js';
import { evaluationSteps } from '../lib/train/evaluate.js';
import { microConfig } from './helpers/micro-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-sweep-jobs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const CLI = join(__dirname, '..', 'lib', 'cli.ts');

describe('the demo-sweep preset', () => {
  it('is the demo with less training, one thread, ten dev evaluations per model', () => {
    const demo = resolveConfig({ preset: 'demo', checkDevices: false });
    const sweep = resolveConfig({ preset: 'demo-sweep', checkDevices: false });
    expect(DEMO_SWEEP_EPOCHS).toEqual({ mentor: 20, student: 10 });
    expect([demo.mentor.train.num_train_epochs, demo.student.train.num_train_epochs]).toEqual([30, 20]);
    expect(sweep.mentor.train.num_train_epochs).toBe(DEMO_SWEEP_EPOCHS.mentor);
    expect(sweep.student.train.num_train_epochs).toBe(DEMO_SWEEP_EPOCHS.student);
    expect(sweep.threads).toBe(1);
    expect(sweep.output_dir).toMatch(/runs[/\\]demo-sweep$/);
    // Everything else is the demo's: task, data, teacher, models, the rest of training and KD.
    const rest = (c: typeof demo) => ({
      ...c,
      output_dir: '',
      threads: 0,
      mentor: { ...c.mentor, train: { ...c.mentor.train, num_train_epochs: 0 } },
      student: { ...c.student, train: { ...c.student.train, num_train_epochs: 0 } },
    });
    expect(rest(sweep)).toEqual(rest(demo));
    // Fewer steps, the same number of dev picks: a tenth of each run.
    expect(sweep.student.train.save_steps).toBe(0.1);
    expect(evaluationSteps(sweep.student.train.save_steps, 400)).toHaveLength(10);
    expect(evaluationSteps(defaultConfig().student.train.save_steps!, 1900)).toHaveLength(10);
  });
});

describe('sweep --jobs', () => {
  it('splits the grid into (task, seed) units and gives each child the flags that restrict it to one', () => {
    const tasks = ['coin_flip', 'last_letter_concatenation'] as const;
    expect(sweepUnits({ seeds: [0, 1], tasks: [...tasks] })).toEqual([
      { task: 'coin_flip', seed: 0 },
      { task: 'coin_flip', seed: 1 },
      { task: 'last_letter_concatenation', seed: 0 },
      { task: 'last_letter_concatenation', seed: 1 },
    ]);
    expect(sweepUnits({ seeds: [3] })).toEqual([{ seed: 3 }]);
    const args = ['sweep', '--preset', 'demo-sweep', '--seeds', '0-4', '--tasks', 'coin_flip,last_letter_concatenation', '--jobs', '2'];
    expect(unitArgs(args, { task: 'coin_flip', seed: 3 }, 1)).toEqual([
      ...args,
      ...['--seeds', '3', '--tasks', 'coin_flip', '--jobs', '1', '--no-report', '--set', 'threads=1'],
    ]);
  });

  it('runs units at most `jobs` at a time, every one even after a failure, then names the failed ones', async () => {
    const units: SweepUnit[] = [0, 1, 2, 3, 4].map((seed) => ({ seed }));
    let running = 0;
    let most = 0;
    const ran: number[] = [];
    const run = async (u: SweepUnit) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      ran.push(u.seed);
      return u.seed === 1 ? 3 : 0;
    };
    await expect(runUnits(units, 2, run)).rejects.toThrow('sweep: 1 of 5 grid points failed: seed 1 (exit 3)');
    expect(most).toBe(2);
    expect(ran.sort()).toEqual([0, 1, 2, 3, 4]);
    await expect(runUnits(units, 0, run)).rejects.toThrow(/--jobs must be a positive integer/);
  });

  it('gives the same cells as one grid point at a time', { timeout: 900_000 }, async () => {
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((done) => {
        const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
          cwd: join(__dirname, '..'),
          env: { ...process.env, MENTOR_KD_CLI_MAIN: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('exit', (code) => done({ code, out }));
      });
    const config = join(root, 'micro.json');
    const { output_dir: _, ...micro } = microConfig(join(root, 'unused'));
    writeFileSync(config, JSON.stringify(micro));
    const grid = ['--seeds', '0', '--tasks', 'coin_flip,last_letter_concatenation', '--modes', 'vanilla'];
    const cells: SweepCell[][] = [];
    for (const jobs of ['1', '2']) {
      const out = join(root, `jobs-${jobs}`);
      const r = await cli(['sweep', '--config', config, '--output-dir', out, ...grid, '--jobs', jobs]);
      expect(r.code, r.out).toBe(0);
      if (jobs === '2') {
        // Each (task, seed) in its own process, its output behind its name; the tables from the stages they left.
        expect(r.out).toContain('[coin_flip seed 0] ');
        expect(r.out).toContain('[last_letter_concatenation seed 0] ');
        expect(r.out).toMatch(/\[sweep\] every grid point trained in [\d.]+ min \(2 at a time\)/);
        // The final pass here trains nothing: every stage it logs is reused from the children's run directories
        // (but the run directories' reports, which every invocation rewrites).
        const stages = r.out
          .slice(r.out.indexOf('every grid point trained'))
          .split('\n')
          .filter((l) => /^\[[\w-]+\] /.test(l) && !l.startsWith('[sweep]') && !l.startsWith('[report]'));
        expect(stages.length).toBeGreaterThan(0);
        expect(stages.filter((l) => !l.includes('(reused)'))).toEqual([]);
      }
      cells.push((JSON.parse(readFileSync(join(out, 'sweep', 'sweep.json'), 'utf8')) as { cells: SweepCell[] }).cells);
    }
    const key = (c: SweepCell) => `${c.task}/${c.mode}/${c.budget}`;
    const byKey = (cs: SweepCell[]) => Object.fromEntries(cs.map((c) => [key(c), { seeds: c.seeds, accuracies: c.accuracies }]));
    expect(cells[1]!.length).toBe(4); // the mentor and vanilla per task
    expect(byKey(cells[1]!)).toEqual(byKey(cells[0]!));
  });
});

describe('sweep --jobs, interrupted', () => {
  const PARENT = join(__dirname, 'helpers', 'sweep-jobs-parent.ts');
  /** Starts the miniature sweep, sends `signal` once both running children are up, and waits for it to end. */
  const interrupt = (name: string, signal: NodeJS.Signals, flags: string[] = []) =>
    new Promise<{ dir: string; code: number | null; signal: NodeJS.Signals | null; out: string }>((done) => {
      const dir = join(root, name);
      mkdirSync(dir);
      const parent = spawn(process.execPath, ['--import', 'tsx', PARENT, dir, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      parent.stdout.on('data', (d) => (out += d));
      parent.stderr.on('data', (d) => (out += d));
      const poll = setInterval(() => {
        if (existsSync(join(dir, 'ready-1')) && existsSync(join(dir, 'ready-2'))) {
          clearInterval(poll);
          parent.kill(signal);
        }
      }, 20);
      parent.on('exit', (code, sig) => {
        clearInterval(poll);
        done({ dir, code, signal: sig, out });
      });
    });
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('SIGTERM: forwarded to the running children, waited for, then the parent dies of it; no further unit starts', { timeout: 60_000 }, async () => {
    const r = await interrupt('term', 'SIGTERM');
    expect(r.signal, r.out).toBe('SIGTERM');
    expect(r.out).toContain('[sweep] received SIGTERM: forwarding it to 2 running grid point(s) and waiting for them to stop');
    for (const seed of [1, 2]) {
      expect(readFileSync(join(r.dir, `stopped-${seed}`), 'utf8')).toBe('SIGTERM'); // it got the signal and finished stopping
      expect(alive(Number(readFileSync(join(r.dir, `ready-${seed}`), 'utf8')))).toBe(false);
    }
    expect(existsSync(join(r.dir, 'ready-3'))).toBe(false);
    expect(r.out).not.toContain('TABLES');
  });

  it("SIGINT: the parent's own handler runs only after every child has stopped", { timeout: 60_000 }, async () => {
    const r = await interrupt('int', 'SIGINT', ['--on-sigint']);
    expect(r.code, r.out).toBe(130);
    expect(r.out).toContain('HANDLER stopped: 1,2');
    expect(readFileSync(join(r.dir, 'stopped-1'), 'utf8')).toBe('SIGINT');
    expect(existsSync(join(r.dir, 'ready-3'))).toBe(false);
  });

  it('children that ignore the signal get SIGKILL after the grace period, and the parent still stops', { timeout: 60_000 }, async () => {
    const r = await interrupt('stubborn', 'SIGTERM', ['--stubborn']);
    expect(r.signal, r.out).toBe('SIGTERM');
    expect(r.out).toContain('[sweep] grid points still running 1000 ms after SIGTERM: sending SIGKILL');
    for (const seed of [1, 2]) {
      expect(existsSync(join(r.dir, `stopped-${seed}`))).toBe(false);
      expect(alive(Number(readFileSync(join(r.dir, `ready-${seed}`), 'utf8')))).toBe(false);
    }
    expect(existsSync(join(r.dir, 'ready-3'))).toBe(false);
  });
});
