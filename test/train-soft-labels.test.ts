/**
 * Student soft labels, online (mentor in the same step) and offline (top-k cache): equal losses
 * at k = V, the k = 32 difference reported, the cache's disk cost, and its failure modes.
 */
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { T5Model } from '../lib/model/t5-model.js';
import { buildSoftLabelCache, collate, SoftLabelCache, tokenizeDataset, train, TrainEngine, type TokenizedDataset } from '../lib/train/index.js';
import { reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

// The model vocabulary is larger than the toy tokenizer's (as flan-t5's 32128 vs 32100), so
// k = 32 keeps a real tail.
const V = 300;
const tokenizer = toyTokenizer();
const work = mkdtempSync(join(tmpdir(), 'mentor-kd-soft-'));
let mentor: T5Model;
let data: TokenizedDataset;
const trainExamples = reversalTask(48, 31);

beforeAll(async () => {
  // A briefly trained mentor: peaked, realistic distributions rather than a random model's.
  mentor = await tinyModel({ vocabSize: V, dModel: 48, dropout: 0, seed: 9 });
  await train({
    model: mentor,
    tokenizer,
    train: reversalTask(256, 30),
    output_dir: join(work, 'mentor'),
    max_steps: 120,
    per_device_train_batch_size: 16,
    learning_rate: 3e-3,
    progress: false,
    save_steps: 0,
    save_total_limit: 1,
  });
  data = tokenizeDataset(trainExamples, tokenizer, { maxSourceLength: 32, maxTargetLength: 32, name: 'train' });
}, 60_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const built = new Set<string>();
async function cache(k: number, logprobDtype: 'float32' | 'float16' = 'float32', tau = 2): Promise<SoftLabelCache> {
  const dir = join(work, `cache-k${k}-${logprobDtype}-t${tau}`);
  if (!built.has(dir)) await buildSoftLabelCache({ mentor, dataset: data, dir, k, tau, batchSize: 10, logprobDtype, padId: tokenizer.padId });
  built.add(dir);
  return SoftLabelCache.open(dir);
}

/** First-step and eval losses of a fresh student (same init, same dropout seed) over three batches. */
async function studentLosses(soft: { mentor?: T5Model; cache?: SoftLabelCache }) {
  const student = await tinyModel({ vocabSize: V, dModel: 32, dropout: 0.1, seed: 4 });
  const engine = await TrainEngine.create(student, { learning_rate: 1e-3, lambda: 0.5, tau: 2, seed: 11, mentor: soft.mentor }, soft.cache);
  const batches = [0, 8, 16].map((i) => collate(data.examples.slice(i, i + 8), tokenizer.padId));
  const evals = [];
  for (const b of batches) evals.push(await engine.evaluateLoss([b]));
  const steps = [];
  for (const b of batches) steps.push(await engine.step([b]));
  engine.dispose();
  return { evals, steps };
}

describe('online vs offline soft labels', () => {
  it('give the same loss when k = V', async () => {
    const full = await cache(V);
    expect(full.info()).toMatchObject({ k: V, vocabSize: V, numExamples: 48, tau: 2 });
    const online = await studentLosses({ mentor });
    const offline = await studentLosses({ cache: full });
    for (let i = 0; i < 3; i++) {
      expect(online.evals[i]!.kl).toBeGreaterThan(0.01);
      expect(offline.evals[i]!.loss).toBeCloseTo(online.evals[i]!.loss, 5);
      expect(offline.evals[i]!.kl).toBeCloseTo(online.evals[i]!.kl, 5);
      // Training steps too (dropout on, same seed), including after two updates.
      expect(offline.steps[i]!.loss).toBeCloseTo(online.steps[i]!.loss, 5);
      expect(offline.steps[i]!.gradNorm / online.steps[i]!.gradNorm).toBeCloseTo(1, 4);
    }
  });

  it('with k = 32 the KL is a lower bound of the full one; the difference is reported', async () => {
    const k32 = await cache(32);
    const online = await studentLosses({ mentor });
    const offline = await studentLosses({ cache: k32 });
    const rows = online.evals.map((o, i) => {
      const f = offline.evals[i]!;
      // Merging the tail into one event can only lose information: KL_topk <= KL_full.
      expect(f.kl).toBeLessThanOrEqual(o.kl + 1e-6);
      expect(f.ce).toBeCloseTo(o.ce, 6);
      return { online: o.loss, offline: f.loss, diff: f.loss - o.loss, rel: (f.loss - o.loss) / o.loss };
    });
    const worst = Math.max(...rows.map((r) => Math.abs(r.rel)));
    console.log(
      `soft labels k=32 of V=${V}: loss online vs offline per batch ${rows.map((r) => `${r.online.toFixed(5)}/${r.offline.toFixed(5)} (Δ ${r.diff.toExponential(2)})`).join(', ')}; worst relative ${worst.toExponential(2)}`,
    );
    expect(worst).toBeLessThan(0.05);
  });

  it('costs 196 bytes per target token at k = 32 (132 with float16 log-probs)', async () => {
    const f32 = (await cache(32)).info();
    const f16 = (await cache(32, 'float16')).info();
    expect(f32.indexDtype).toBe('I16');
    const payload = (lp: number) => f32.numTokens * (32 * (2 + lp) + 4);
    expect(f32.dataBytes).toBeGreaterThanOrEqual(payload(4));
    expect(f32.dataBytes - payload(4)).toBeLessThan(1024 + 8 * (f32.numExamples + 1)); // header + offsets
    expect(f16.dataBytes - payload(2)).toBeLessThan(1024 + 8 * (f16.numExamples + 1));
    console.log(
      `soft-label cache: ${f32.numTokens} tokens, ${f32.bytesPerToken.toFixed(1)} B/token (F32 log-probs), ${f16.bytesPerToken.toFixed(1)} B/token (F16)`,
    );
    // float16 log-probs cost little accuracy.
    const a = await studentLosses({ cache: await SoftLabelCache.open(f32.dir) });
    const b = await studentLosses({ cache: await SoftLabelCache.open(f16.dir) });
    expect(Math.abs(a.evals[0]!.loss - b.evals[0]!.loss)).toBeLessThan(1e-3);
  });

  it('a student trains end to end from the cache through train()', async () => {
    const student = await tinyModel({ vocabSize: V, dModel: 32, seed: 4 });
    const r = await train({
      model: student,
      tokenizer,
      train: trainExamples,
      output_dir: join(work, 'student'),
      max_steps: 8,
      per_device_train_batch_size: 8,
      maxSourceLength: 32,
      maxTargetLength: 32,
      softLabels: await cache(32),
      kd: { lambda: 0.3, tau: 2 },
      progress: false,
    });
    expect(r.steps).toHaveLength(8);
    expect(r.steps.every((s) => s.kl > 0 && Number.isFinite(s.loss))).toBe(true);
    expect(r.steps.at(-1)!.loss).toBeLessThan(r.steps[0]!.loss);
  });
});

describe('soft-label cache failure modes', () => {
  it('refuses a cache at another temperature, for other data, or together with a mentor', async () => {
    const student = await tinyModel({ vocabSize: V, dModel: 32, seed: 4 });
    const tau1 = await cache(32, 'float32', 1);
    const batch = collate(data.examples.slice(0, 4), tokenizer.padId);
    const engine = await TrainEngine.create(student, { tau: 2 }, tau1);
    await expect(engine.step([batch])).rejects.toThrow(/holds log-probs at tau=1.* but training uses tau=2/);
    const opts = { model: student, tokenizer, output_dir: join(work, 'bad'), max_steps: 1, maxSourceLength: 32, maxTargetLength: 32, progress: false } as const;
    await expect(train({ ...opts, train: reversalTask(48, 99), softLabels: tau1 })).rejects.toThrow(/was built for other training data/);
    await expect(train({ ...opts, train: trainExamples, softLabels: tau1, mentor })).rejects.toThrow(/not both/);
  });

  it('refuses labels that do not line up with the cached tokens', async () => {
    const c = await cache(32);
    const shorter = tokenizeDataset(trainExamples, tokenizer, { maxSourceLength: 32, maxTargetLength: 2 });
    const batch = collate(shorter.examples.slice(0, 2), tokenizer.padId);
    expect(() => c.native.gather(batch.exampleIds, batch.labels)).toThrow(/example 0 has 2 target tokens in this batch but \d+ in the cache/);
    expect(() => c.native.gather([999, 1], batch.labels)).toThrow(/example 999 is outside \[0, 48\)/);
  });

  it('rejects damaged cache directories, naming the file and field', async () => {
    const broken = join(work, 'broken');
    await buildSoftLabelCache({ mentor, dataset: data, dir: broken, k: 4, padId: tokenizer.padId });
    const index = JSON.parse(readFileSync(join(broken, 'soft_labels.json'), 'utf8'));
    writeFileSync(join(broken, 'soft_labels.json'), JSON.stringify({ ...index, num_tokens: index.num_tokens + 1 }));
    await expect(SoftLabelCache.open(broken)).rejects.toThrow(/soft_labels.json: the shards hold \d+ tokens but num_tokens is/);
    writeFileSync(join(broken, 'soft_labels.json'), '{"format": "something-else"}');
    await expect(SoftLabelCache.open(broken)).rejects.toThrow(/soft_labels.json: field 'format' must be 'mentor-kd-soft-labels'/);
    await expect(SoftLabelCache.open(join(work, 'nope'))).rejects.toThrow(/nope: not a directory/);
    await expect(buildSoftLabelCache({ mentor, dataset: data, dir: broken, k: 4, padId: tokenizer.padId })).rejects.toThrow(/already exists/);
    await expect(buildSoftLabelCache({ mentor, dataset: data, dir: join(work, 'k0'), k: 0, padId: tokenizer.padId })).rejects.toThrow(
      /k must be in \[1, vocabSize=300\]/,
    );
  });
});
