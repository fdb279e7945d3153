/**
 * The data of the distributed tests: a tiny T5, a synthetic dataset with uneven lengths, and the
 * per-rank micro-batches of each step (from DistributedSampler), shared by the workers and by the
 * single-process reference in the test.
 */
import { DistributedSampler } from './distributed-sampler.js';
import { tensor, type Tensor } from '../../lib/model/tensor.js';
import type { Seq2SeqBatch } from '../../lib/model/t5-model.js';

export const CONFIG = {
  model_type: 't5',
  vocab_size: 64,
  d_model: 32,
  d_kv: 8,
  d_ff: 64,
  num_layers: 2,
  num_heads: 4,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
  dropout_rate: 0,
  decoder_start_token_id: 0,
  pad_token_id: 0,
  eos_token_id: 1,
};
export const INIT_SEED = 100; // rank 0's init; the others start from another and get rank 0's by broadcast
export const DATA_SEED = 7;
export const NUM_EXAMPLES = 32;
export const PER_RANK_PER_STEP = 4; // split into micro-batches of 1 and 3 (gradient accumulation, uneven sizes)
export const LR = 0.1;

export interface Example {
  source: number[];
  target: number[];
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function examples(): Example[] {
  const r = rng(12345);
  const out: Example[] = [];
  for (let i = 0; i < NUM_EXAMPLES; i++) {
    const sl = 2 + Math.floor(r() * 9);
    const tl = 1 + Math.floor(r() * 8); // uneven target-token counts
    out.push({
      source: Array.from({ length: sl }, () => 2 + Math.floor(r() * 60)),
      target: [...Array.from({ length: tl - 1 }, () => 2 + Math.floor(r() * 60)), 1],
    });
  }
  return out;
}

/** Right-padded batch: pad 0 with mask 0 in the source, -100 in the labels. */
export function collate(rows: readonly Example[]): Seq2SeqBatch & { labels: Tensor<Int32Array> } {
  const B = rows.length;
  const S = Math.max(...rows.map((e) => e.source.length));
  const T = Math.max(...rows.map((e) => e.target.length));
  const ids = new Int32Array(B * S);
  const mask = new Int32Array(B * S);
  const labels = new Int32Array(B * T).fill(-100);
  rows.forEach((e, b) => {
    ids.set(e.source, b * S);
    mask.fill(1, b * S, b * S + e.source.length);
    labels.set(e.target, b * T);
  });
  return { inputIds: tensor(ids, [B, S]), attentionMask: tensor(mask, [B, S]), labels: tensor(labels, [B, T]) };
}

/** This rank's examples at `step` (DistributedSampler, one epoch = NUM_EXAMPLES / (W · PER_RANK_PER_STEP) steps). */
export function rankExamples(step: number, rank: number, worldSize: number): Example[] {
  const data = examples();
  const sampler = new DistributedSampler({ size: data.length, rank, worldSize, shuffle: true, seed: DATA_SEED });
  const stepsPerEpoch = Math.floor(sampler.numSamples / PER_RANK_PER_STEP);
  sampler.setEpoch(Math.floor(step / stepsPerEpoch));
  const start = (step % stepsPerEpoch) * PER_RANK_PER_STEP;
  return sampler
    .indices()
    .slice(start, start + PER_RANK_PER_STEP)
    .map((i) => data[i]!);
}

/** The micro-batches of one rank at one step: 1 example, then 3. */
export function microBatches(step: number, rank: number, worldSize: number): Seq2SeqBatch[] {
  const ex = rankExamples(step, rank, worldSize);
  return [collate(ex.slice(0, 1)), collate(ex.slice(1))];
}

export const PROMPTS: number[][] = [
  [5, 9, 13, 2],
  [7, 7, 30, 41, 8, 3],
  [22, 11],
  [60, 2, 3, 4, 5, 6, 7],
  [19, 18, 17],
];
