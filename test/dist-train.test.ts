/**
 * The training engine's loop, data-parallel: `train({dist})` on 2 Gloo ranks (AdamW, clipping,
 * sharded dev evaluation, rank-0 checkpoints) equals one process accumulating the same two
 * batches per step — with dropout too, since masks are keyed by the micro-batch's global index —
 * and a 2-rank run resumed from rank 0's checkpoint repeats the uninterrupted one bit for bit.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TrainResult } from '../lib/train/trainer.js';
import { launchWorkers, savedParams } from './helpers/dist-launch.js';
import { runTrainJob } from './helpers/dist-train-worker.js';

const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-dist-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const launch2 = (job: Record<string, unknown>) => launchWorkers('dist-train-worker.ts', job);

describe('train({dist}) on 2 ranks', () => {
  it('equals one process with gradient accumulation 2 (same batches per step): losses, tokens, dev accuracy, parameters', async () => {
    const steps = 4;
    const ddpOut = join(tmp, 'ddp');
    const [job, single] = await Promise.all([
      launch2({ out: ddpOut, steps, accumulation: 1 }),
      runTrainJob({ out: join(tmp, 'single'), steps, accumulation: 2 }),
    ]);
    expect(job.code, job.stderr).toBe(0);
    const ddp = JSON.parse(readFileSync(join(ddpOut, 'result.json'), 'utf8')) as TrainResult;
    expect(ddp.steps).toHaveLength(steps);
    ddp.steps.forEach((s, i) => {
      const t = single.steps[i]!;
      expect(s.tokens).toBe(t.tokens); // the global token count of the step
      expect(s.sourceTokens).toBe(t.sourceTokens);
      expect(s.loss).toBeCloseTo(t.loss, 5);
      expect(s.gradNorm).toBeCloseTo(t.gradNorm, 4);
    });
    // Sharded dev evaluation sums to the whole dev set.
    expect(ddp.evaluations.map((e) => [e.step, e.correct, e.total])).toEqual(single.evaluations.map((e) => [e.step, e.correct, e.total]));
    expect(ddp.evaluations[0]!.total).toBe(5);
    // Rank 0's checkpoint, with the world size recorded for resume.
    const ck = join(ddpOut, `checkpoint-${steps}`);
    expect(JSON.parse(readFileSync(join(ck, 'trainer_state.json'), 'utf8')).world_size).toBe(2);
    expect(existsSync(join(ck, 'optimizer.safetensors'))).toBe(true);
    const a = await savedParams(ck);
    const b = await savedParams(join(tmp, 'single', `checkpoint-${steps}`));
    let diff = 0;
    for (const [n, x] of a) x.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - b.get(n)![i]!))));
    expect(diff).toBeLessThan(1e-5);
  });

  it('with dropout: the same masks as one process accumulating both batches (keyed by global micro-batch index)', async () => {
    const steps = 3;
    const [job, single] = await Promise.all([
      launch2({ out: join(tmp, 'ddp-dropout'), steps, accumulation: 1, dropout: 0.2 }),
      runTrainJob({ out: join(tmp, 'single-dropout'), steps, accumulation: 2, dropout: 0.2 }),
    ]);
    expect(job.code, job.stderr).toBe(0);
    const noDropout = await runTrainJob({ out: join(tmp, 'single-no-dropout'), steps, accumulation: 2 });
    const ddp = JSON.parse(readFileSync(join(tmp, 'ddp-dropout', 'result.json'), 'utf8')) as TrainResult;
    ddp.steps.forEach((s, i) => {
      expect(s.loss).toBeCloseTo(single.steps[i]!.loss, 5);
      expect(s.gradNorm).toBeCloseTo(single.steps[i]!.gradNorm, 4);
    });
    // Dropout was on: the losses differ from a run without it.
    expect(Math.abs(single.steps[0]!.loss - noDropout.steps[0]!.loss)).toBeGreaterThan(1e-3);
    const a = await savedParams(join(tmp, 'ddp-dropout', `checkpoint-${steps}`));
    const b = await savedParams(join(tmp, 'single-dropout', `checkpoint-${steps}`));
    let diff = 0;
    for (const [n, x] of a) x.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - b.get(n)![i]!))));
    expect(diff).toBeLessThan(1e-5);
  });

  it("resumed on 2 ranks from rank 0's checkpoint, with dropout, it repeats the uninterrupted run bit for bit", async () => {
    const full = join(tmp, 'resume-full');
    const resumed = join(tmp, 'resume-from-2');
    const whole = await launch2({ out: full, steps: 5, accumulation: 2, dropout: 0.2, saveEvery: 2 });
    expect(whole.code, whole.stderr).toBe(0);
    mkdirSync(resumed, { recursive: true });
    cpSync(join(full, 'checkpoint-2'), join(resumed, 'checkpoint-2'), { recursive: true });
    const again = await launch2({ out: resumed, steps: 5, accumulation: 2, dropout: 0.2, saveEvery: 2, resume: true });
    expect(again.code, again.stderr).toBe(0);
    const a = JSON.parse(readFileSync(join(full, 'result.json'), 'utf8')) as TrainResult;
    const b = JSON.parse(readFileSync(join(resumed, 'result.json'), 'utf8')) as TrainResult;
    expect(b.resumedFrom).toContain('checkpoint-2');
    expect(b.steps.map((s) => [s.step, s.loss, s.gradNorm])).toEqual(a.steps.slice(2).map((s) => [s.step, s.loss, s.gradNorm]));
    const pa = await savedParams(join(full, 'checkpoint-5'));
    const pb = await savedParams(join(resumed, 'checkpoint-5'));
    for (const [n, x] of pa) expect(Buffer.from(pb.get(n)!.buffer).equals(Buffer.from(x.buffer)), n).toBe(true);
  });

  it('ranks that find different checkpoints (outputDir not shared between nodes) refuse to start, saying what each found', async () => {
    // Rank 0's folder holds a checkpoint of the run above, rank 1's (another node's disk) none.
    const [a, b] = [join(tmp, 'node0-out'), join(tmp, 'node1-out')];
    mkdirSync(b, { recursive: true });
    cpSync(join(tmp, 'resume-full', 'checkpoint-2'), join(a, 'checkpoint-2'), { recursive: true });
    const r = await launch2({ out: a, outByRank: [a, b], steps: 5, accumulation: 2, dropout: 0.2, saveEvery: 2, resume: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /train: dist: the ranks disagree on where training starts: rank 0: resume from \S+node0-out\/checkpoint-2; rank 1: resume, but no complete checkpoint in \S+node1-out \(is output_dir on a filesystem every node mounts\?/,
    );
    expect(existsSync(join(a, 'checkpoint-4'))).toBe(false); // nobody trained
  });
});
