/**
 * Resumable, shardable generation (lib/pipeline/generation.ts): per-batch sampling seeds make the
 * output independent of how batches are split across ranks and of where a run was interrupted.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { buildT5Tokenizer } from '../lib/model/tokenizer.js';
import { generateOver, type GenerateOverOptions } from '../lib/pipeline/generation.js';
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

describe('generateOver', () => {
  it('gives the same samples on 1 rank, on 2 ranks, and after resuming from a torn file', async () => {
    const records = generateCoinFlip({ count: 24, seed: 3, size: 2 });
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
        num_layers: 1,
        num_heads: 4,
        feed_forward_proj: 'gated-gelu',
        tie_word_embeddings: false,
      },
      { seed: 5 },
    );
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
    // Rank 0 wrote every batch once.
    const lines = readFileSync(shared, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).batch as number);
    expect(lines.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);

    // Keep two batches and a torn third line: a rerun redoes the rest and matches.
    const resumed = join(dir, 'resumed.jsonl');
    const full = readFileSync(join(dir, 'single.jsonl'), 'utf8').split('\n');
    writeFileSync(resumed, `${full[0]}\n${full[1]}\n${full[2]!.slice(0, 20)}`);
    expect(await generateOver(model, tok, questions, base(resumed))).toEqual(single);
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
    const batches = readFileSync(resumed2, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).batch as number);
    expect(batches.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
    model.dispose();
  });
});
