/**
 * The whole pipeline under `mentor-kd launch --nproc-per-node 2` (Gloo on loopback):
 * - it finishes, rank 0 alone writing the run directory and printing results;
 * - its outputs equal one process with the same effective batch (gradient accumulation 2):
 *   identical data, teacher rationales, tokenizer, mentor samples and test predictions; model
 *   weights equal within float tolerance (dropout on: masks are keyed by global micro-batch);
 * - a rerun reuses every stage; a job killed (every process, SIGKILL) while the student trains
 *   resumes from rank 0's checkpoint on 2 ranks to the uninterrupted results.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../lib/config/load.js';
import type { RunConfigInput } from '../lib/config/schema.js';
import { runPipeline, type PipelineResult } from '../lib/pipeline/pipeline.js';
import { T5Model } from '../lib/model/t5-model.js';
import { PIPELINE_STAGES, tinyConfig } from './helpers/pipeline-config.js';

const root = resolve(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-pipeline-dist-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function config(outputDir: string, gradientAccumulation: number) {
  const c = tinyConfig(outputDir);
  c.data = { synthetic: { train: 96, dev: 16, test: 32, size: 2 } };
  c.student.softLabels = 'offline'; // rank 0 builds the cache, both ranks read it
  c.student.topK = 8;
  for (const t of [c.mentor.train, c.student.train]) {
    t.num_train_epochs = 6;
    t.per_device_train_batch_size = 8;
    t.save_steps = 8;
    t.gradient_accumulation_steps = gradientAccumulation;
  }
  return c;
}

interface Job {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `mentor-kd launch --nproc-per-node 2 -- mentor-kd run -c <file>`, in its own process group (killable as a whole). */
function launchRun(configFile: string, killWhen?: () => boolean): Promise<Job> {
  const cli = ['--import', 'tsx', join(root, 'lib', 'cli.ts')];
  const child = spawn(process.execPath, [...cli, 'launch', '--nproc-per-node', '2', '--', process.execPath, ...cli, 'run', '-c', configFile], {
    cwd: root,
    env: { ...process.env, MENTOR_KD_DIST_TIMEOUT_MS: '60000' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = killWhen
    ? setInterval(() => {
        if (!killWhen()) return;
        clearInterval(timer);
        process.kill(-child.pid!, 'SIGKILL'); // the launcher and both workers, as a crashed node would
      }, 20)
    : undefined;
  return new Promise((done) =>
    child.once('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      done({ code, signal, stdout, stderr });
    }),
  );
}

function writeConfig(c: RunConfigInput, name: string): string {
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(c));
  return file;
}

const results = (dir: string) => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as PipelineResult;
const file = (dir: string, rel: string) => readFileSync(join(dir, rel), 'utf8');

async function maxWeightDiff(a: string, b: string): Promise<number> {
  const [ma, mb] = await Promise.all([T5Model.load(a), T5Model.load(b)]);
  let diff = 0;
  for (const n of ma.parameterNames()) {
    const x = ma.getParameter(n).data as Float32Array;
    const y = mb.getParameter(n).data as Float32Array;
    for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
  }
  ma.dispose();
  mb.dispose();
  return diff;
}

/** Files a crashed or careless writer would leave: temporaries of atomic writes. */
function strayTemporaries(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.tmp-\d+|\.tmp$/.test(f));
}

describe('the pipeline on 2 ranks (mentor-kd launch)', () => {
  const ddpDir = join(tmp, 'ddp');
  const singleDir = join(tmp, 'single');
  let ddp: Job;
  let single: PipelineResult;

  beforeAll(async () => {
    ddp = await launchRun(writeConfig(config(ddpDir, 1), 'ddp'));
    single = await runPipeline(validateConfig(config(singleDir, 2) as never), { log: () => undefined });
  }, 600_000);

  it('finishes; rank 0 alone prints the results and writes the run directory', () => {
    expect(ddp.code, ddp.stderr).toBe(0);
    expect(ddp.stdout.match(/\| student: mentor-kd \|/g)).toHaveLength(1);
    expect(ddp.stdout.match(/^\[train-mentor\]/gm)).toHaveLength(1);
    for (const s of PIPELINE_STAGES) {
      expect(existsSync(join(ddpDir, 'stages', s, 'manifest.json')), s).toBe(true);
    }
    expect(existsSync(join(ddpDir, 'report', 'report.html'))).toBe(true);
    expect(existsSync(join(ddpDir, 'stages', 'student-mentor-kd-m2', 'soft-labels', 'soft_labels.json'))).toBe(true);
    expect(strayTemporaries(ddpDir)).toEqual([]);
    const ck = readdirSync(join(ddpDir, 'stages', 'train-mentor', 'train')).filter((f) => f.startsWith('checkpoint-'));
    expect(ck.length).toBeGreaterThan(0);
    expect(JSON.parse(file(join(ddpDir, 'stages', 'train-mentor', 'train', ck[0]!), 'trainer_state.json')).world_size).toBe(2);
  });

  it('equals one process with the same effective batch: same data, rationales, samples, predictions; weights within float tolerance', async () => {
    for (const f of ['stages/data/train.json', 'stages/collect/samples.json', 'stages/filter/kept.json', 'stages/tokenizer/tokenizer.json']) {
      expect(file(ddpDir, f) === file(singleDir, f), f).toBe(true);
    }
    for (const s of ['train-mentor', 'student-vanilla', 'student-mentor-kd-m2']) {
      const d = await maxWeightDiff(join(ddpDir, 'stages', s, 'model'), join(singleDir, 'stages', s, 'model'));
      expect(d, s).toBeLessThan(1e-4);
    }
    // Sharded sampling and greedy decoding gather what one process generates.
    expect(file(ddpDir, 'stages/augment/kept.json') === file(singleDir, 'stages/augment/kept.json')).toBe(true);
    for (const s of ['evaluate-train-mentor', 'evaluate-student-vanilla', 'evaluate-student-mentor-kd-m2']) {
      expect(file(ddpDir, `stages/${s}/predictions.jsonl`) === file(singleDir, `stages/${s}/predictions.jsonl`), s).toBe(true);
    }
    const r = results(ddpDir);
    expect(r.mentor).toEqual(single.mentor);
    expect(r.students.map((s) => [s.mode, s.testAccuracy, s.devAccuracy, s.steps])).toEqual(
      single.students.map((s) => [s.mode, s.testAccuracy, s.devAccuracy, s.steps]),
    );
  });

  it('a rerun reuses every stage', async () => {
    const again = await launchRun(join(tmp, 'ddp.json'));
    expect(again.code, again.stderr).toBe(0);
    const lines = again.stdout.split('\n').filter((l) => /^\[(?!report)[a-z-0-9]+\]/.test(l));
    expect(lines.length).toBeGreaterThan(8);
    for (const l of lines) expect(l).toContain('(reused)');
  }, 120_000);

  it('killed as a whole while the student trains, it resumes on 2 ranks to the uninterrupted results', async () => {
    const dir = join(tmp, 'killed');
    const cfg = writeConfig(config(dir, 1), 'killed');
    const trainDir = join(dir, 'stages', 'student-mentor-kd-m2', 'train');
    const killed = await launchRun(cfg, () => existsSync(trainDir) && readdirSync(trainDir).some((f) => /^checkpoint-\d+$/.test(f)));
    expect(killed.signal ?? killed.code).toBe('SIGKILL');
    expect(existsSync(join(dir, 'stages', 'student-mentor-kd-m2', 'manifest.json'))).toBe(false);
    const resumed = await launchRun(cfg);
    expect(resumed.code, resumed.stderr).toBe(0);
    const log = (readFileSync(join(trainDir, 'metrics.jsonl'), 'utf8').match(/"event":"resume"/g) ?? []).length;
    expect(log).toBe(1);
    for (const s of ['evaluate-student-mentor-kd-m2', 'evaluate-student-vanilla']) {
      expect(file(dir, `stages/${s}/predictions.jsonl`) === file(ddpDir, `stages/${s}/predictions.jsonl`), s).toBe(true);
    }
    expect(results(dir).students).toEqual(results(ddpDir).students);
  }, 300_000);
});
