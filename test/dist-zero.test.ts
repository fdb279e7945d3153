/**
 * train.sharding on 2 Gloo ranks: zero1 (AdamW state sharded) and zero2 (gradients too) take the
 * same steps as DDP (losses and gradient norms to fp32 rounding over 20 steps, the same final
 * parameters), hold half of DDP's optimizer state per rank (measured on the tensors), write one
 * optimizer shard per rank, and resume exactly after a rank is killed. Bad combinations fail in
 * one line naming train.sharding before any work.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { estimateMemory } from '../lib/plan/estimate.js';
import { MODEL_PRESETS } from '../lib/plan/presets.js';
import type { TrainResult } from '../lib/train/trainer.js';
import { train } from '../lib/train/trainer.js';
import { launchWorkers, savedParams } from './helpers/dist-launch.js';
import type { ZeroJob } from './helpers/dist-zero-worker.js';
import { reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-dist-zero-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const launch = (job: ZeroJob, nproc = 2) => launchWorkers('dist-zero-worker.ts', job, nproc);

const result = (dir: string) => JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as TrainResult;

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let diff = 0;
  for (const [n, x] of a) x.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - b.get(n)![i]!))));
  return diff;
}

describe('train.sharding on 2 ranks', () => {
  it('zero1 and zero2 take the same 20 steps as DDP: losses, gradient norms, parameters; one optimizer shard per rank', async () => {
    const steps = 20;
    const runs = await Promise.all(
      (['none', 'zero1', 'zero2'] as const).map((sharding) => launch({ out: join(tmp, sharding), steps, sharding, accumulation: 2 })),
    );
    runs.forEach((r) => expect(r.code, r.stderr).toBe(0));
    const ddp = result(join(tmp, 'none'));
    expect(ddp.steps).toHaveLength(steps);
    for (const sharding of ['zero1', 'zero2']) {
      const z = result(join(tmp, sharding));
      expect(z.steps).toHaveLength(steps);
      z.steps.forEach((s, i) => {
        const d = ddp.steps[i]!;
        expect(s.tokens).toBe(d.tokens);
        expect(Math.abs(s.loss - d.loss), `${sharding} step ${i + 1} loss`).toBeLessThan(1e-5 * Math.max(1, Math.abs(d.loss)));
        expect(Math.abs(s.gradNorm - d.gradNorm), `${sharding} step ${i + 1} grad norm`).toBeLessThan(1e-4 * Math.max(1, d.gradNorm));
      });
      // Clipping was active (the global norm decides it): the first steps' norms exceed max_grad_norm = 1.
      expect(z.steps[0]!.gradNorm).toBeGreaterThan(1);
      const ck = join(tmp, sharding, `checkpoint-${steps}`);
      expect(existsSync(join(ck, 'optimizer-rank0-of-2.safetensors'))).toBe(true);
      expect(existsSync(join(ck, 'optimizer-rank1-of-2.safetensors'))).toBe(true);
      expect(existsSync(join(ck, 'optimizer.safetensors'))).toBe(false);
      expect(maxDiff(await savedParams(ck), await savedParams(join(tmp, 'none', `checkpoint-${steps}`)))).toBeLessThan(1e-5);
    }
    // The loss fell: the comparison is over real training, not a stalled run.
    expect(ddp.steps[steps - 1]!.loss).toBeLessThan(ddp.steps[0]!.loss * 0.8);
  });

  it("each rank holds half of DDP's optimizer state (bytes of the state tensors)", async () => {
    const out = join(tmp, 'bytes');
    const r = await launch({ out, steps: 1, sharding: 'zero1', measure: true });
    expect(r.code, r.stderr).toBe(0);
    const bytes = JSON.parse(readFileSync(join(out, 'bytes.json'), 'utf8')) as Record<string, { rank: number; optimizerStateBytes: number }[]>;
    const ddp = bytes.none!.map((b) => b.optimizerStateBytes);
    expect(ddp[0]).toBe(ddp[1]);
    for (const sharding of ['zero1', 'zero2']) {
      const per = bytes[sharding]!.map((b) => b.optimizerStateBytes);
      for (const b of per) {
        // Moments of half the elements, plus a step counter (8 bytes) per parameter piece held.
        expect(b / ddp[0]!, `${sharding}: ${per.join(', ')} vs ${ddp[0]}`).toBeGreaterThan(0.49);
        expect(b / ddp[0]!).toBeLessThan(0.51);
      }
    }
  });

  it('a rank killed after step 3 and the run resumed from checkpoint-2 repeats the uninterrupted zero2 run bit for bit (dropout on)', async () => {
    const base: ZeroJob = { out: '', steps: 5, sharding: 'zero2', accumulation: 2, dropout: 0.2, saveEvery: 2 };
    const full = join(tmp, 'resume-full');
    const crashed = join(tmp, 'resume-crashed');
    const [whole, killed] = await Promise.all([launch({ ...base, out: full }), launch({ ...base, out: crashed, dieAfterStep: 3 })]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(killed.code).not.toBe(0);
    expect(existsSync(join(crashed, 'checkpoint-2'))).toBe(true);
    expect(existsSync(join(crashed, 'checkpoint-4'))).toBe(false);
    const again = await launch({ ...base, out: crashed, resume: true });
    expect(again.code, again.stderr).toBe(0);
    const a = result(full);
    const b = result(crashed);
    expect(b.resumedFrom).toContain('checkpoint-2');
    expect(b.steps.map((s) => [s.step, s.loss, s.gradNorm])).toEqual(a.steps.slice(2).map((s) => [s.step, s.loss, s.gradNorm]));
    const pa = await savedParams(join(full, 'checkpoint-5'));
    const pb = await savedParams(join(crashed, 'checkpoint-5'));
    for (const [n, x] of pa) expect(Buffer.from(pb.get(n)!.buffer).equals(Buffer.from(x.buffer)), n).toBe(true);
    // The optimizer shards themselves match too.
    for (const f of ['optimizer-rank0-of-2.safetensors', 'optimizer-rank1-of-2.safetensors'])
      expect(readFileSync(join(crashed, 'checkpoint-5', f)).equals(readFileSync(join(full, 'checkpoint-5', f))), f).toBe(true);
  });

  it('resuming sharded state with another train.sharding or world size is refused in one line naming both', async () => {
    const other = await launch({ out: join(tmp, 'resume-full'), steps: 5, sharding: 'none', accumulation: 2, dropout: 0.2, saveEvery: 2, resume: true });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(
      /checkpoint-5: holds optimizer state sharded over 2 ranks but train\.sharding is none; resume with the same train\.sharding and world size/,
    );
    const three = await launch({ out: join(tmp, 'resume-full'), steps: 5, sharding: 'zero2', accumulation: 2, dropout: 0.2, saveEvery: 2, resume: true }, 3);
    expect(three.code).not.toBe(0);
    expect(three.stderr).toMatch(/world_size was 2, now 3/);
  });
});

describe('train.sharding: bad combinations fail before any work', () => {
  it('without a process group, and an unknown stage, each in one line naming the field', async () => {
    const tokenizer = toyTokenizer();
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: 0 });
    const out = join(tmp, 'no-group');
    const base = { model, tokenizer, train: reversalTask(6, 3), output_dir: out, max_steps: 1, progress: false, logger: () => undefined };
    try {
      await expect(train({ ...base, sharding: 'zero2' })).rejects.toThrow(/^train: train\.sharding 'zero2' needs data parallelism \(parallel: a process group/);
      await expect(train({ ...base, sharding: 'zero3' as 'zero2' })).rejects.toThrow('train: sharding must be one of none, zero1, zero2, got "zero3"');
      expect(existsSync(join(out, 'checkpoint-1'))).toBe(false);
    } finally {
      model.dispose();
    }
  });
});

describe('the memory planner under train.sharding', () => {
  it('divides the AdamW part by the ranks for zero1 and zero2, and the gradient part for zero2', () => {
    const base = { config: MODEL_PRESETS['flan-t5-base'], batch: 8, sourceLength: 512, targetLength: 256, ranks: 4 };
    const ddp = estimateMemory({ ...base, sharding: 'none' });
    const z1 = estimateMemory({ ...base, sharding: 'zero1' });
    const z2 = estimateMemory({ ...base, sharding: 'zero2' });
    expect(z1.optimizerBytes).toBe(Math.ceil(ddp.optimizerBytes / 4));
    expect(z1.gradientBytes).toBe(ddp.gradientBytes);
    expect(z2.optimizerBytes).toBe(z1.optimizerBytes);
    expect(z2.gradientBytes).toBe(Math.ceil(ddp.gradientBytes / 4));
    expect(z2.weightBytes).toBe(ddp.weightBytes); // weights stay replicated
    // DDP's gradients are views of its buckets. zero2 frees each bucket once reduced: beside the two in flight it holds
    // those backward fills (the LM head's or the embedding's 32128·768 fp32, a bucket of its own, and a 25 MiB one),
    // and no full gradient to trade against the activations.
    expect([ddp.reducerBytes, z2.reducerBytes, z2.overlapBytes]).toEqual([0, 32128 * 768 * 4 + 25 * 2 ** 20, 0]);
    expect(ddp.totalBytes - z2.totalBytes).toBe(
      ddp.optimizerBytes - z2.optimizerBytes + ddp.gradientBytes - z2.gradientBytes - z2.reducerBytes - ddp.overlapBytes,
    );
  });
});
