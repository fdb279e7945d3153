/**
 * Resumable, shardable generation (lib/pipeline/generation.ts) on the engine: per-question sampling
 * seeds make the output independent of how questions are split across ranks and of where a run was
 * interrupted; the finished JSONL is the same bytes after a resume; greedy outputs equal the static
 * batched path's.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { buildT5Tokenizer } from '../lib/model/tokenizer.js';
import { generateOver, type GenerateOverOptions } from '../lib/pipeline/generation.js';
import { rowsOf } from '../lib/model/tensor.js';
import { generateCoinFlip } from '../lib/tasks/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-gen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** In-process "ranks" whose allgathers meet at shared rendezvous, one per call. */
function fakeGroups(world: number) {
  const rounds: { slots: unknown[]; arrived: number; release: () => void; all: Promise<void> }[] = [];
  const calls = new Array<number>(world).fill(0);
  const round = (k: number) => {
    if (!rounds[k]) {
      let release!: () => void;
      const all = new Promise<void>((r) => (release = r));
      rounds[k] = { slots: new Array(world), arrived: 0, release, all };
    }
    return rounds[k]!;
  };
  return Array.from({ length: world }, (_, rank) => ({
    rank,
    worldSize: world,
    async allgatherObject<T>(value: T): Promise<T[]> {
      const r = round(calls[rank]!++);
      r.slots[rank] = structuredClone(value);
      if (++r.arrived === world) r.release();
      await r.all;
      return r.slots as T[];
    },
  }));
}

/** Coin Flip questions, a tokenizer built on them, and an untrained tiny T5 of `layers` layers. */
async function coinFlipSetup(o: { count: number; seed: number; layers: number; modelSeed: number }) {
  const records = generateCoinFlip({ count: o.count, seed: o.seed, size: 2 });
  const questions = records.map((r) => ({ id: r.id, question: r.question, answer: r.answer }));
  const tok = buildT5Tokenizer(
    records.map((r) => r.question),
    { vocabSize: 200, minCount: 1 },
  );
  const model = await T5Model.fromConfig(
    {
      model_type: 't5',
      vocab_size: tok.vocabSize,
      d_model: 32,
      d_kv: 8,
      d_ff: 64,
      num_layers: o.layers,
      num_heads: 4,
      feed_forward_proj: 'gated-gelu',
      tie_word_embeddings: false,
    },
    { seed: o.modelSeed },
  );
  return { questions, tok, model };
}

describe('generateOver', () => {
  it('gives the same samples on 1 rank, on 2 ranks, and after resuming from a torn file', async () => {
    const { questions, tok, model } = await coinFlipSetup({ count: 24, seed: 3, layers: 1, modelSeed: 5 });
    const base = (outFile: string): GenerateOverOptions => ({
      task: 'coin_flip',
      batchSize: 5,
      maxNewTokens: 12,
      maxSourceLength: 64,
      samples: 2,
      temperature: 0.9,
      seed: 7,
      outFile,
      label: 'test',
    });
    const single = await generateOver(model, tok, questions, base(join(dir, 'single.jsonl')));
    expect(single.length).toBe(48);
    expect(new Set(single.map((r) => r.output)).size).toBeGreaterThan(10); // sampling really samples

    const shared = join(dir, 'two-ranks.jsonl');
    const [g0, g1] = fakeGroups(2);
    const [r0, r1] = await Promise.all([
      generateOver(model, tok, questions, { ...base(shared), group: g0 }),
      generateOver(model, tok, questions, { ...base(shared), group: g1 }),
    ]);
    expect(r0).toEqual(single);
    expect(r1).toEqual(single);
    // Rank 0 wrote every question once, and the finished file is the single rank's, byte for byte.
    const fullText = readFileSync(join(dir, 'single.jsonl'), 'utf8');
    const lines = readFileSync(shared, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).index as number);
    expect(lines).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(readFileSync(shared, 'utf8')).toBe(fullText);

    // A kill after two questions, mid-write of a third: a rerun redoes the rest, and the file is the
    // same bytes as an uninterrupted run's.
    const resumed = join(dir, 'resumed.jsonl');
    const full = fullText.split('\n');
    writeFileSync(resumed, `${full[0]}\n${full[1]}\n${full[2]!.slice(0, 20)}`);
    expect(await generateOver(model, tok, questions, base(resumed))).toEqual(single);
    expect(readFileSync(resumed, 'utf8')).toBe(fullText);
    // A file from an older format (per-batch lines) is redone, not misread.
    const old = join(dir, 'old-format.jsonl');
    writeFileSync(old, `${JSON.stringify({ batch: 0, rows: single.slice(0, 10) })}\n`);
    expect(await generateOver(model, tok, questions, base(old))).toEqual(single);
    // The same torn file resumed on 2 ranks: rank 0 reads it and tells rank 1 what is done.
    const resumed2 = join(dir, 'resumed-two-ranks.jsonl');
    writeFileSync(resumed2, `${full[0]}\n${full[3]}\n${full[1]!.slice(0, 20)}`);
    const [h0, h1] = fakeGroups(2);
    const [s0, s1] = await Promise.all([
      generateOver(model, tok, questions, { ...base(resumed2), group: h0 }),
      generateOver(model, tok, questions, { ...base(resumed2), group: h1 }),
    ]);
    expect(s0).toEqual(single);
    expect(s1).toEqual(single);
    expect(readFileSync(resumed2, 'utf8')).toBe(fullText);
    model.dispose();
  });

  it('greedy outputs equal the static batched path (the generation before the engine)', async () => {
    const { questions, tok, model } = await coinFlipSetup({ count: 13, seed: 4, layers: 2, modelSeed: 9 });
    try {
      const o: GenerateOverOptions = {
        task: 'coin_flip',
        batchSize: 4,
        maxNewTokens: 16,
        maxSourceLength: 20,
        seed: 1,
        outFile: join(dir, 'greedy.jsonl'),
        label: 'test',
      };
      const rows = await generateOver(model, tok, questions, o);
      const before: string[] = [];
      for (let b = 0; b < questions.length; b += o.batchSize) {
        const batch = tok.encodeBatch(
          questions.slice(b, b + o.batchSize).map((q) => q.question),
          { maxLength: o.maxSourceLength },
        );
        const out = await model.native.generate(batch, { maxNewTokens: o.maxNewTokens });
        for (const ids of rowsOf(out)) before.push(tok.decode(ids));
      }
      expect(rows.map((r) => r.output)).toEqual(before);
      expect(rows.map((r) => r.id)).toEqual(questions.map((q) => q.id));
      expect(new Set(before).size).toBeGreaterThan(1);
    } finally {
      model.dispose();
    }
  });
});
