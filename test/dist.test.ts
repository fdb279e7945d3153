/**
 * Distributed data parallelism on c10d/Gloo over loopback, with real worker processes:
 * - 2 ranks trained k steps == one process trained on the union of both shards (same effective
 *   batch), with gradient accumulation and uneven token counts; the wrong rule (mean of per-rank
 *   means) is shown to differ, so the comparison can tell;
 * - a checkpoint written by rank 0 resumes on 2 ranks to the same parameters as an uninterrupted run;
 * - sharded generation gathers exactly what one process generates;
 * - a killed or hung worker ends the job non-zero within the collective timeout, naming the rank.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../lib/parallel/launch.js';
import { T5Model } from '../lib/model/t5-model.js';
import { tensor } from '../lib/model/tensor.js';
import { CONFIG, INIT_SEED, PROMPTS, rankExamples } from './helpers/dist-data.js';
import { maxDiff, reference, savedParameters } from './helpers/dist-reference.js';

const root = resolve(__dirname, '..');
const worker = join(__dirname, 'helpers', 'dist-worker.ts');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-dist-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  endedAt: number;
}

function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Run> {
  const t0 = Date.now();
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((done) =>
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, ms: Date.now() - t0, endedAt: Date.now() });
    }),
  );
}

/** `mentor-kd launch --nproc-per-node 2 -- node dist-worker.ts` with a job description. */
function launchJob(job: Record<string, unknown>): Promise<Run> {
  return run(
    process.execPath,
    ['--import', 'tsx', 'lib/cli.ts', 'launch', '--nproc-per-node', '2', '--grace-ms', '2000', '--', process.execPath, '--import', 'tsx', worker],
    {
      MKD_TEST_JOB: JSON.stringify(job),
    },
  );
}

/** The two workers started by hand with the torchrun variables (as Slurm or a PyTorchJob would). */
async function startPair(job: Record<string, unknown>): Promise<{ ranks: [Promise<Run>, Promise<Run>]; kill: () => void }> {
  const port = await freePort();
  const procs = [0, 1].map((rank) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', worker], {
      cwd: root,
      env: {
        ...process.env,
        MKD_TEST_JOB: JSON.stringify(job),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        WORLD_SIZE: '2',
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        MENTOR_KD_THREADS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<Run>((done) =>
      child.once('exit', (code, signal) => done({ code, signal, stdout, stderr, ms: Date.now() - t0, endedAt: Date.now() })),
    );
    return { child, exited };
  });
  return { ranks: [procs[0]!.exited, procs[1]!.exited], kill: () => procs.forEach((p) => p.child.kill('SIGKILL')) };
}

interface StepReport {
  loss: number;
  localTokens: number;
  globalTokens: number;
  reduce: { buckets: number; startedInBackward: number };
}
interface Report {
  rank: number;
  buckets: number;
  steps: StepReport[];
  generated?: number[][];
  start: number;
}
const report = (dir: string, rank: number): Report => JSON.parse(readFileSync(join(dir, `rank${rank}.json`), 'utf8')) as Report;

const STEPS = 4;

describe('data-parallel training on 2 Gloo ranks (loopback)', () => {
  const out = join(tmp, 'ddp');
  const ckpt = join(tmp, 'ckpt-2');
  let job: Run;
  let ref: Awaited<ReturnType<typeof reference>>;

  beforeAll(async () => {
    // 17 KiB buckets: several buckets, so ordering and overlap are exercised.
    [job, ref] = await Promise.all([
      launchJob({ steps: STEPS, out, generate: true, checkpointDir: ckpt, checkpointAt: 2, bucketBytes: 16384, timeoutMs: 20_000 }),
      reference(STEPS),
    ]);
    if (job.code !== 0) throw new Error(`launch failed (${job.code}):\n${job.stderr}`);
  });

  it('after k steps the parameters equal one process trained on the union of both shards', async () => {
    const ddp = await savedParameters(join(out, 'final'));
    const { diff, scale } = maxDiff(ddp, ref.params);
    expect(scale).toBeGreaterThan(0.1);
    expect(diff).toBeLessThan(2e-5);
    // Training moved the parameters far more than that tolerance.
    expect(maxDiff(ref.params, ref.start).diff).toBeGreaterThan(1e-2);
  });

  it('the token-count rule matters: a mean of per-rank means lands elsewhere', async () => {
    const wrong = await reference(STEPS, 'mean-of-means');
    expect(maxDiff(wrong.params, ref.params).diff).toBeGreaterThan(1e-3);
  });

  it('ranks saw disjoint shards with uneven token counts, accumulated 2 micro-batches, and report the global loss', () => {
    const [r0, r1] = [report(out, 0), report(out, 1)];
    let uneven = 0;
    for (let s = 0; s < STEPS; s++) {
      const a = r0.steps[s]!;
      const b = r1.steps[s]!;
      expect(a.globalTokens).toBe(a.localTokens + b.localTokens);
      expect(b.globalTokens).toBe(a.globalTokens);
      if (a.localTokens !== b.localTokens) uneven++;
      expect(a.loss).toBeCloseTo(ref.losses[s]!, 4); // mean CE over the union, as the reference computes it
      expect(b.loss).toBe(a.loss);
      // Several buckets, all started while backward was running.
      expect(a.reduce.buckets).toBeGreaterThan(3);
      expect(a.reduce.startedInBackward).toBe(a.reduce.buckets);
    }
    expect(uneven).toBeGreaterThan(0);
    for (let s = 0; s < STEPS; s++) {
      const mine = new Set(rankExamples(s, 0, 2).map((e) => JSON.stringify(e)));
      for (const e of rankExamples(s, 1, 2)) expect(mine.has(JSON.stringify(e))).toBe(false);
    }
  });

  it('sharded generation gathers, in order, what one process generates', async () => {
    const model = await T5Model.fromConfig(CONFIG, { seed: INIT_SEED });
    const expected: number[][] = [];
    for (const p of PROMPTS)
      expected.push(Array.from((await model.generate({ inputIds: tensor(Int32Array.from(p), [1, p.length]) }, { maxNewTokens: 6 })).data));
    model.dispose();
    expect(report(out, 0).generated).toEqual(expected);
    expect(report(out, 1).generated).toEqual(expected);
  });

  it('rank 0 wrote the checkpoint; resumed on 2 ranks it continues to the uninterrupted result', async () => {
    expect(existsSync(join(ckpt, 'model.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(ckpt, 'dist_state.json'), 'utf8'))).toMatchObject({ world_size: 2, step: 2 });
    const out2 = join(tmp, 'resumed');
    const resumed = await launchJob({ steps: STEPS, out: out2, resumeFrom: ckpt, bucketBytes: 16384, timeoutMs: 20_000 });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(report(out2, 0).start).toBe(2);
    expect(report(out2, 1).steps).toHaveLength(STEPS - 2);
    const a = await savedParameters(join(out, 'final'));
    const b = await savedParameters(join(out2, 'final'));
    expect(maxDiff(a, b).diff).toBeLessThan(1e-6);
  });

  it('backward through the model API + a token-weighted allreduceGradients gives the same result', async () => {
    const out3 = join(tmp, 'explicit');
    const r = await launchJob({ steps: STEPS, out: out3, explicit: true, timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const { diff } = maxDiff(await savedParameters(join(out3, 'final')), ref.params);
    expect(diff).toBeLessThan(2e-5);
  });
});

describe('failures end the job, naming the rank', () => {
  it('launcher: a worker killed mid-training stops the job non-zero within the collective timeout', async () => {
    const out = join(tmp, 'killed');
    const timeoutMs = 15_000;
    const r = await launchJob({ steps: 6, out, dieAt: 2, timeoutMs });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/mentor-kd launch: rank 1 \(local rank 1, pid \d+\) was killed by SIGKILL; stopping the other 1 worker/);
    expect(r.stderr).toMatch(/launch: job failed: rank 1 /);
    const killedAt = Number(readFileSync(join(out, 'killed-at'), 'utf8'));
    expect(r.endedAt - killedAt).toBeLessThan(timeoutMs);
  });

  it('no launcher: the surviving rank fails fast and names the dead rank', async () => {
    const out = join(tmp, 'dead-pair');
    const timeoutMs = 20_000;
    const pair = await startPair({ steps: 6, out, dieAt: 2, timeoutMs });
    const [r0, r1] = await Promise.all(pair.ranks);
    expect(r1.signal).toBe('SIGKILL');
    expect(r0.code).toBe(1);
    expect(r0.stderr).toMatch(/dist-worker rank 0: dist: '[^']+' \(collective #\d+\) failed on rank 0 of 2: rank 1 is dead or frozen/);
    const killedAt = Number(readFileSync(join(out, 'killed-at'), 'utf8'));
    // Gloo sees the closed connection at once; only the heartbeat check takes time.
    expect(r0.endedAt - killedAt).toBeLessThan(timeoutMs / 2);
  });

  it('rank-0-only work longer than the collective timeout: the others wait for it (patient barrier), then get its result', async () => {
    const out = join(tmp, 'patient');
    const timeoutMs = 2000;
    const pair = await startPair({ out, timeoutMs, patient: { busyMs: 3 * timeoutMs } });
    const [r0, r1] = await Promise.all(pair.ranks);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);
    const rank1 = JSON.parse(readFileSync(join(out, 'rank1.json'), 'utf8')) as { waitedMs: number; value: { answer: number } };
    expect(rank1.value).toEqual({ answer: 42 });
    expect(rank1.waitedMs).toBeGreaterThanOrEqual(3 * timeoutMs - 100);
  });

  it('rank 0 dying during rank-0-only work ends the waiting rank, naming rank 0', async () => {
    const out = join(tmp, 'patient-dead');
    const timeoutMs = 2000;
    const pair = await startPair({ out, timeoutMs, patient: { busyMs: 60_000, dieAfterMs: 1500 } });
    const [r0, r1] = await Promise.all(pair.ranks);
    expect(r0.signal).toBe('SIGKILL');
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/dist-worker rank 1: dist: 'slow rank-0 work' \(collective #\d+\) failed on rank 1 of 2: rank 0 is gone/);
    const killedAt = Number(readFileSync(join(out, 'killed-at'), 'utf8'));
    expect(r1.endedAt - killedAt).toBeLessThan(10_000);
  });

  it('no launcher: a rank that stops arriving makes the other fail within the timeout, naming it', async () => {
    const out = join(tmp, 'hung-pair');
    const timeoutMs = 3000;
    const pair = await startPair({ steps: 6, out, hangAt: 2, timeoutMs });
    const r0 = await pair.ranks[0];
    pair.kill();
    expect(r0.code).toBe(1);
    expect(r0.stderr).toMatch(/failed on rank 0 of 2: rank 1 did not arrive within the 3000 ms timeout \(it is alive, still at collective #\d+ '[^']+'\)/);
    const hungAt = Number(readFileSync(join(out, 'hung-at'), 'utf8'));
    const waited = r0.endedAt - hungAt;
    expect(waited).toBeGreaterThanOrEqual(timeoutMs - 500);
    expect(waited).toBeLessThan(timeoutMs + 3000); // the timeout, then a heartbeat check of < 1 s
    expect(statSync(join(out, 'hung-at')).isFile()).toBe(true);
  });
});

describe('what rank 0 writes, every rank must see', () => {
  it('a shared run directory passes and is left as it was; an unshared one fails on every rank, naming who cannot see it', async () => {
    const shared = join(tmp, 'shared-run');
    const ok = await startPair({ out: join(tmp, 'shared-ok'), sharedCheck: { dirs: [shared, shared] }, timeoutMs: 20_000 });
    for (const r of await Promise.all(ok.ranks)) expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(shared)).toEqual([]);

    // Two folders stand for one path on two nodes without a shared filesystem.
    const bad = await startPair({ out: join(tmp, 'shared-bad'), sharedCheck: { dirs: [join(tmp, 'node0-run'), join(tmp, 'node1-run')] }, timeoutMs: 20_000 });
    const [r0, r1] = await Promise.all(bad.ranks);
    for (const [rank, r] of [r0, r1].entries()) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `dist-worker rank ${rank}: dist: the run directory \\S+node0-run is not shared between ranks: rank 1 \\(host [^)]+\\) does not see the file rank 0 \\(host [^)]+\\) wrote there; rank 0 alone writes it and every rank reads it`,
        ),
      );
    }
  });
});
