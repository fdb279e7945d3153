/** Data to batches: tokenisation and truncation reports, empty data, bucketed deterministic batches, padding. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BatchStream, collate, describeTruncation, epochBatches, tokenizeDataset, train } from '../lib/train/index.js';
import { reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const tokenizer = toyTokenizer();
const work = mkdtempSync(join(tmpdir(), 'mentor-kd-data-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('tokenizeDataset', () => {
  it('truncates long sources and targets to the max lengths, keeping EOS, and counts them', () => {
    const ds = tokenizeDataset(
      [
        { source: 'reverse: a b', target: 'b a' },
        { source: 'reverse: a b c d e f g h', target: 'h g f e d c b a' },
      ],
      tokenizer,
      { maxSourceLength: 6, maxTargetLength: 4, name: 'train' },
    );
    const [short, long] = ds.examples;
    expect(short!.targetIds).toEqual(tokenizer.encode('b a'));
    expect(short!.targetTruncated).toBe(false);
    expect(long!.targetIds).toHaveLength(4);
    expect(long!.targetIds.at(-1)).toBe(tokenizer.eosId);
    expect(long!.targetIds.slice(0, 3)).toEqual(tokenizer.encode('h g f e d c b a').slice(0, 3));
    expect(long!.sourceIds).toHaveLength(6);
    expect(ds.truncation).toEqual({ examples: 2, sourceTruncated: 1, targetTruncated: 1, targetTokensDropped: 5, maxSourceLength: 6, maxTargetLength: 4 });
    expect(describeTruncation('train', ds.truncation)).toBe('train: 1 of 2 targets truncated to 4 tokens (5 tokens dropped); 1 sources truncated to 6');
    // The fingerprint follows the ids: other lengths, other fingerprint.
    const again = tokenizeDataset(
      [
        { source: 'reverse: a b', target: 'b a' },
        { source: 'reverse: a b c d e f g h', target: 'h g f e d c b a' },
      ],
      tokenizer,
      { maxSourceLength: 6, maxTargetLength: 4 },
    );
    expect(again.fingerprint).toBe(ds.fingerprint);
    const longer = tokenizeDataset(
      [
        { source: 'reverse: a b', target: 'b a' },
        { source: 'reverse: a b c d e f g h', target: 'h g f e d c b a' },
      ],
      tokenizer,
      { maxSourceLength: 6, maxTargetLength: 5 },
    );
    expect(longer.fingerprint).not.toBe(ds.fingerprint);
  });

  it('rejects an empty dataset and malformed examples, naming them', async () => {
    expect(() => tokenizeDataset([], tokenizer, { maxSourceLength: 8, maxTargetLength: 8, name: 'train' })).toThrow(
      'train: the dataset is empty (0 examples); nothing to train on',
    );
    expect(() => tokenizeDataset([{ source: 'x' } as never], tokenizer, { maxSourceLength: 8, maxTargetLength: 8, name: 'dev' })).toThrow(
      "dev[0]: needs string fields 'source' and 'target'",
    );
    expect(() => tokenizeDataset([{ source: 'a', target: 'b' }], tokenizer, { maxSourceLength: 0, maxTargetLength: 8 })).toThrow(
      /maxSourceLength must be a positive integer/,
    );
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize });
    await expect(train({ model, tokenizer, train: [], output_dir: join(work, 'empty'), max_steps: 1, progress: false })).rejects.toThrow(
      /train: the dataset is empty/,
    );
  });

  it('a training run reports truncated targets in its result, its log and metrics.jsonl', async () => {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize });
    const lines: string[] = [];
    const data = [...reversalTask(6, 1), { source: 'reverse: a b c d e f g h', target: 'h g f e d c b a h g f e d c b a' }];
    const out = join(work, 'trunc');
    const r = await train({
      model,
      tokenizer,
      train: data,
      output_dir: out,
      max_steps: 2,
      per_device_train_batch_size: 4,
      maxTargetLength: 8,
      progress: false,
      logger: (l) => lines.push(l),
    });
    expect(r.truncation.train.targetTruncated).toBe(1);
    expect(r.truncation.train.targetTokensDropped).toBe(17 - 8);
    expect(lines.join('\n')).toMatch(/train: 1 of 7 targets truncated to 8 tokens \(9 tokens dropped\)/);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics[0]).toMatchObject({ event: 'truncation', dataset: 'train', targetTruncated: 1 });
    const steps = metrics.filter((m) => typeof m.loss === 'number');
    expect(steps.map((m) => m.step)).toEqual([1, 2]);
    for (const m of steps) {
      expect(m.tokens_per_s).toBeGreaterThan(0);
      expect(Number.isFinite(m.grad_norm)).toBe(true);
    }
  });
});

describe('train() run length and progress', () => {
  it('epochs set the step count (with gradient accumulation); the progress bar runs', async () => {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize });
    // 10 examples, batch 4: 3 batches per epoch; 2 epochs with accumulation 2 -> ceil(6 / 2) = 3 steps.
    const r = await train({
      model,
      tokenizer,
      train: reversalTask(10, 2),
      output_dir: join(work, 'epochs'),
      num_train_epochs: 2,
      per_device_train_batch_size: 4,
      gradient_accumulation_steps: 2,
      progress: true,
      logger: () => {},
    });
    expect(r.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(r.steps.map((s) => s.epoch)).toEqual([0, 1, 1]);
    expect(r.lastCheckpoint).toBe(join(work, 'epochs', 'checkpoint-3'));
    await expect(train({ model, tokenizer, train: reversalTask(4, 2), output_dir: join(work, 'x'), progress: false })).rejects.toThrow(
      /give max_steps or num_train_epochs/,
    );
  });
});

describe('batches', () => {
  const lengths = Array.from({ length: 103 }, (_, i) => 3 + ((i * 37) % 50));

  it('cover every example once per epoch, deterministically from (seed, epoch)', () => {
    const a = epochBatches(lengths, 0, { batchSize: 8, seed: 1, bucketBatches: 4 });
    expect(a.flat().sort((x, y) => x - y)).toEqual(lengths.map((_, i) => i));
    expect(a).toHaveLength(Math.ceil(103 / 8));
    expect(epochBatches(lengths, 0, { batchSize: 8, seed: 1, bucketBatches: 4 })).toEqual(a);
    expect(epochBatches(lengths, 0, { batchSize: 8, seed: 2, bucketBatches: 4 })).not.toEqual(a);
    expect(epochBatches(lengths, 1, { batchSize: 8, seed: 1, bucketBatches: 4 })).not.toEqual(a);
    expect(epochBatches(lengths, 0, { batchSize: 8, seed: 1, keepPartial: false }).flat()).toHaveLength(96);
  });

  it('bucket by length, so padding is much lower than with plain shuffling', () => {
    const padding = (batches: number[][]) =>
      batches.reduce((sum, b) => sum + b.length * Math.max(...b.map((i) => lengths[i]!)) - b.reduce((s, i) => s + lengths[i]!, 0), 0);
    const bucketed = padding(epochBatches(lengths, 0, { batchSize: 8, seed: 1, bucketBatches: 13 }));
    const plain = padding(epochBatches(lengths, 0, { batchSize: 8, seed: 1, bucketBatches: 1 }));
    expect(bucketed).toBeLessThan(plain / 3);
  });

  it('a stream resumes from its position exactly, across epoch boundaries', () => {
    const opts = { batchSize: 8, seed: 5, bucketBatches: 2 };
    const a = new BatchStream(lengths, opts);
    const seen: number[][] = [];
    for (let i = 0; i < 40; i++) seen.push(a.next().indices);
    const b = new BatchStream(lengths, opts);
    for (let i = 0; i < 17; i++) b.next();
    const c = new BatchStream(lengths, opts);
    c.seek(b.position);
    expect(b.position).toEqual({ epoch: 1, batch: 4 });
    for (let i = 17; i < 40; i++) expect(c.next().indices).toEqual(seen[i]);
    expect(() => c.seek({ epoch: 0, batch: 99 })).toThrow(/cannot seek to batch 99/);
  });

  it('collate pads each batch to its own longest source and target, labels with -100', () => {
    const ds = tokenizeDataset(
      [
        { source: 'reverse: a b', target: 'b a' },
        { source: 'reverse: a b c d', target: 'd c b a' },
      ],
      tokenizer,
      { maxSourceLength: 32, maxTargetLength: 32 },
    );
    const b = collate(ds.examples, tokenizer.padId);
    const [s0, s1] = ds.examples.map((e) => e.sourceIds.length);
    const [t0, t1] = ds.examples.map((e) => e.targetIds.length);
    expect(b.inputIds.shape).toEqual([2, Math.max(s0!, s1!)]);
    expect(b.labels.shape).toEqual([2, Math.max(t0!, t1!)]);
    const T = b.labels.shape[1]!,
      S = b.inputIds.shape[1]!;
    expect(Array.from(b.labels.data.slice(t0!, T))).toEqual(new Array(T - t0!).fill(-100));
    expect(Array.from(b.attentionMask.data.slice(0, S))).toEqual([...new Array(s0!).fill(1), ...new Array(S - s0!).fill(0)]);
    expect(Array.from(b.inputIds.data.slice(s0!, S))).toEqual(new Array(S - s0!).fill(tokenizer.padId));
    expect(b.exampleIds).toEqual([0, 1]);
  });
});
