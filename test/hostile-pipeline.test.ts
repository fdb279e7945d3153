/**
 * Hostile inputs and misuse, pipeline part: one process per run directory (the run lock), a stale
 * lock taken over with identical results, no key value anywhere in a run directory, the teacher's
 * transport settings (deadline) reaching the collect stage. The stages up to `tokenizer` only (no
 * training): seconds, not minutes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../lib/config/load.js';
import { runPipeline } from '../lib/pipeline/pipeline.js';
import { RUN_LOCK_FILE, RunDirLockedError, RunLock } from '../lib/pipeline/run-lock.js';
import { tinyConfig } from './helpers/pipeline-config.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-hostile-pipeline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const KEY_ENV = 'MENTOR_KD_HOSTILE_PLANTED_KEY';
const KEY_VALUE = 'sk-planted-7f3a9c1e5d-do-not-publish';
process.env[KEY_ENV] = KEY_VALUE;

const config = (dir: string) => {
  const c = tinyConfig(dir);
  c.teacher.apiKeyEnv = KEY_ENV;
  return validateConfig(c as never);
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

/** Every file a stage wrote, as the comparison sees it (timings left out). */
function stageOutputs(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const stage of ['data', 'collect', 'filter', 'tokenizer']) {
    for (const f of filesUnder(join(dir, 'stages', stage)).sort()) {
      const rel = f.slice(dir.length + 1);
      if (rel.endsWith('.cache.jsonl')) continue; // request order and timestamps vary; samples.json is the result
      out[rel] = rel.endsWith('manifest.json')
        ? JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), startedAt: 0, finishedAt: 0, durationMs: 0 })
        : readFileSync(f, 'utf8');
    }
  }
  return out;
}

const deadPid = (): number => {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
};

describe('run directory lock', () => {
  const refDir = join(work, 'reference');
  let reference: Record<string, string> = {};

  it('a run takes the lock and gives it back; no key value is written anywhere in the run directory', async () => {
    await runPipeline(config(refDir), { until: 'tokenizer', log: () => {} });
    expect(existsSync(join(refDir, RUN_LOCK_FILE))).toBe(false);
    reference = stageOutputs(refDir);
    expect(Object.keys(reference)).toContain('stages/collect/samples.json');
    const files = filesUnder(refDir);
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) expect(readFileSync(f, 'utf8').includes(KEY_VALUE), f).toBe(false);
    expect(readFileSync(join(refDir, 'config.json'), 'utf8')).toContain(`"apiKeyEnv": "${KEY_ENV}"`);
  });

  it('a second run on the same directory is refused, naming the holder, and changes nothing', async () => {
    const dir = join(work, 'two');
    const first = runPipeline(config(dir), { until: 'collect', log: () => {} });
    await expect(runPipeline(config(dir), { until: 'collect', log: () => {} })).rejects.toThrow(
      new RegExp(`${join(dir, RUN_LOCK_FILE)}: the run directory is in use by pid ${process.pid} on ${hostname()}, started `),
    );
    // Another process is refused the same way while the first run holds the lock.
    const other = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import('./lib/pipeline/run-lock.ts').then((m) => { try { m.RunLock.acquire(${JSON.stringify(dir)}); } catch (e) { console.error(e.message); process.exit(3); } })`,
      ],
      { encoding: 'utf8' },
    );
    expect(other.status).toBe(3);
    expect(other.stderr).toContain(`the run directory is in use by pid ${process.pid} on ${hostname()}`);
    await first;
    expect(existsSync(join(dir, RUN_LOCK_FILE))).toBe(false);
    // Finished: the next run gets the lock and reuses the stages.
    const lines: string[] = [];
    await runPipeline(config(dir), { until: 'collect', log: (l) => lines.push(l) });
    expect(lines.some((l) => l.startsWith('[collect] (reused)'))).toBe(true);
  });

  it('a lock held by a live process is refused; one left by a dead pid is taken over, said in the log, and the run resumes to the same results', async () => {
    const dir = join(work, 'stale');
    // The first run got as far as the data stage and was killed holding the lock.
    await runPipeline(config(dir), { until: 'data', log: () => {} });
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const lock = join(dir, RUN_LOCK_FILE);
      writeFileSync(lock, JSON.stringify({ pid: sleeper.pid, host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', command: 'mentor-kd run' }));
      const refused = await runPipeline(config(dir), { log: () => {} }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RunDirLockedError);
      expect((refused as Error).message).toBe(
        `${lock}: the run directory is in use by pid ${sleeper.pid} on ${hostname()}, started 2026-01-01T00:00:00.000Z (mentor-kd run); ` +
          'one process writes a run directory at a time. Wait for it to finish (or stop it), or use another output_dir.',
      );
      expect(existsSync(join(dir, 'stages', 'collect'))).toBe(false);
      // Another host's lock cannot be checked from here: refused, with what to do.
      writeFileSync(lock, JSON.stringify({ pid: 1234, host: 'some-other-host', startedAt: 'x', command: '' }));
      await expect(runPipeline(config(dir), { log: () => {} })).rejects.toThrow(`If that process is gone, delete ${lock} and run again.`);

      const dead = deadPid();
      writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', command: 'mentor-kd run' }));
      const lines: string[] = [];
      await runPipeline(config(dir), { until: 'tokenizer', log: (l) => lines.push(l) });
      expect(lines[0]).toBe(
        `run lock: took over the stale lock of pid ${dead} on ${hostname()}, started 2026-01-01T00:00:00.000Z (mentor-kd run): that process is gone; resuming from its stages`,
      );
      expect(lines.some((l) => l.startsWith('[data] (reused)'))).toBe(true);
      expect(existsSync(lock)).toBe(false);
      expect(stageOutputs(dir)).toEqual(reference);
    } finally {
      sleeper.kill();
    }
  });

  it('an unreadable lock file (torn) is taken over; release leaves a lock that is not ours alone', () => {
    const dir = join(work, 'torn');
    const lines: string[] = [];
    RunLock.acquire(dir).release();
    writeFileSync(join(dir, RUN_LOCK_FILE), '{"pid": 12');
    const lock = RunLock.acquire(dir, { log: (l) => lines.push(l) });
    expect(lines).toEqual([`run lock: took over an unreadable lock file ${join(dir, RUN_LOCK_FILE)}`]);
    writeFileSync(join(dir, RUN_LOCK_FILE), 'someone else');
    lock.release();
    expect(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8')).toBe('someone else');
  });
});

describe("the pipeline's teacher settings", () => {
  it('deadlineMs stops the collect stage with the deadline error, in time, and the lock is given back', async () => {
    const dir = join(work, 'deadline');
    const c = config(dir);
    c.teacher.embedded!.latencyMs = 2000;
    c.teacher.deadlineMs = 300;
    const t0 = performance.now();
    await expect(runPipeline(c, { until: 'collect', log: () => {} })).rejects.toThrow(/teacher collection passed its deadline \(deadlineMs 300\)/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(existsSync(join(dir, RUN_LOCK_FILE))).toBe(false);
  });
});
