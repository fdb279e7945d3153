/**
 * Length-bucketed, shuffled batches with dynamic padding, deterministic from a seed.
 *
 * Each epoch: shuffle all examples with a generator seeded by (seed, epoch); cut the order into
 * buckets of `bucketBatches` batches; sort each bucket by length so a batch holds similar lengths
 * (little padding); split into batches; shuffle the batch order. The order depends on nothing but
 * (seed, epoch), so a run resumes from a position {epoch, batch} alone.
 */
import { tensor, type Tensor } from '../model/tensor.js';
import type { ConsistencyPairs } from '../native/binding.js';
import type { TokenizedExample } from './data.js';
import { mixSeed, seededRandom, shuffleInPlace } from '../tasks/random.js';

export interface BatchPlanOptions {
  batchSize: number;
  seed: number;
  /** Batches per length bucket (default 50); 1 = no bucketing. */
  bucketBatches?: number;
  /** Keep the last, smaller batch of an epoch (default true). */
  keepPartial?: boolean;
}

/** Example indices (positions in `lengths`) of every batch of one epoch. */
export function epochBatches(lengths: readonly number[], epoch: number, options: BatchPlanOptions): number[][] {
  const { batchSize, seed } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const bucketBatches = options.bucketBatches ?? 50;
  if (!Number.isInteger(bucketBatches) || bucketBatches < 1) throw new Error(`bucketBatches must be a positive integer, got ${bucketBatches}`);
  const random = seededRandom(mixSeed(seed, epoch));
  const order = shuffleInPlace(
    lengths.map((_, i) => i),
    random,
  );
  const bucket = batchSize * bucketBatches;
  const batches: number[][] = [];
  for (let start = 0; start < order.length; start += bucket) {
    // Stable sort by length; ties keep the shuffled order.
    const chunk = order.slice(start, start + bucket).sort((a, b) => lengths[a]! - lengths[b]!);
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  const last = batches[batches.length - 1];
  if (options.keepPartial === false && last && last.length < batchSize) batches.pop();
  return shuffleInPlace(batches, random);
}

export interface StreamPosition {
  epoch: number;
  /** Index of the next batch within the epoch. */
  batch: number;
}

/** An endless stream of batches over epochs; its position is all a checkpoint needs to store. */
export class BatchStream {
  private epochPlan: number[][] | undefined;
  private pos: StreamPosition = { epoch: 0, batch: 0 };

  constructor(
    private readonly lengths: readonly number[],
    private readonly options: BatchPlanOptions,
  ) {
    if (lengths.length === 0) throw new Error('BatchStream: no examples');
  }

  get position(): StreamPosition {
    return { ...this.pos };
  }

  /** Moves to a saved position (validated against this dataset's plan). */
  seek(position: StreamPosition): void {
    if (!Number.isInteger(position.epoch) || position.epoch < 0 || !Number.isInteger(position.batch) || position.batch < 0) {
      throw new Error(`BatchStream: invalid position ${JSON.stringify(position)}`);
    }
    const plan = epochBatches(this.lengths, position.epoch, this.options);
    if (position.batch > plan.length)
      throw new Error(`BatchStream: epoch ${position.epoch} has ${plan.length} batches, cannot seek to batch ${position.batch}`);
    this.epochPlan = plan;
    this.pos = { ...position };
  }

  batchesPerEpoch(): number {
    return epochBatches(this.lengths, 0, this.options).length;
  }

  /** The next `count` batches, as next() would give them, without moving. */
  peek(count: number): { indices: number[]; epoch: number }[] {
    const ahead = new BatchStream(this.lengths, this.options);
    ahead.seek(this.pos);
    return Array.from({ length: count }, () => ahead.next());
  }

  /** The next batch and the epoch it belongs to. */
  next(): { indices: number[]; epoch: number } {
    if (!this.epochPlan) this.epochPlan = epochBatches(this.lengths, this.pos.epoch, this.options);
    if (this.pos.batch >= this.epochPlan.length) {
      this.pos = { epoch: this.pos.epoch + 1, batch: 0 };
      this.epochPlan = epochBatches(this.lengths, this.pos.epoch, this.options);
    }
    const indices = this.epochPlan[this.pos.batch]!;
    const epoch = this.pos.epoch;
    this.pos = { epoch, batch: this.pos.batch + 1 };
    return { indices, epoch };
  }
}

export interface CollatedBatch {
  inputIds: Tensor<Int32Array>;
  attentionMask: Tensor<Int32Array>;
  /** Targets right-padded with -100 (ignored by the loss). */
  labels: Tensor<Int32Array>;
  /** Dataset positions of the rows (soft-label cache ids). */
  exampleIds: number[];
  /** Weight of the CE term, >= 0 (absent: 1); 0 for on-policy rows (lib/train/on-policy.ts), step-by-step's per-task means (lib/train/step-by-step.ts). */
  ceWeight?: number;
  /** The task of every row, when the rows are one task's (step-by-step). */
  task?: string;
  /** MCC-KD's answer-position pairs (lib/train/mcc-kd.ts). */
  consistency?: ConsistencyPairs;
}

/** Pads a batch to its own longest source and target (dynamic padding). */
export function collate(examples: readonly TokenizedExample[], padId: number): CollatedBatch {
  if (examples.length === 0) throw new Error('collate: empty batch');
  const B = examples.length;
  const S = Math.max(1, ...examples.map((e) => e.sourceIds.length));
  const T = Math.max(1, ...examples.map((e) => e.targetIds.length));
  const ids = new Int32Array(B * S).fill(padId);
  const mask = new Int32Array(B * S);
  const labels = new Int32Array(B * T).fill(-100);
  examples.forEach((e, b) => {
    ids.set(e.sourceIds, b * S);
    mask.fill(1, b * S, b * S + e.sourceIds.length);
    labels.set(e.targetIds, b * T);
  });
  return {
    inputIds: tensor(ids, [B, S]),
    attentionMask: tensor(mask, [B, S]),
    labels: tensor(labels, [B, T]),
    exampleIds: examples.map((e) => e.index),
  };
}

export function exampleLength(e: TokenizedExample): number {
  return e.sourceIds.length + e.targetIds.length;
}

/**
 * Decoder-only rows (tokenizeCausalDataset: sourceIds = the prompt, targetIds = the completion):
 * prompt + completion in one sequence, RIGHT-padded with padId to the batch's longest row; labels
 * are HF's (the completion ids where they sit, -100 on prompt and padding, unshifted: the native
 * model shifts them as LlamaForCausalLM's loss does). Positions come from the mask natively
 * (cumsum − 1), so left padding would give the same numbers; right padding keeps prompt starts
 * aligned, as HF's training collators do.
 */
export function collateCausal(examples: readonly TokenizedExample[], padId: number): CollatedBatch {
  if (examples.length === 0) throw new Error('collateCausal: empty batch');
  const B = examples.length;
  const L = Math.max(1, ...examples.map(exampleLength));
  const ids = new Int32Array(B * L).fill(padId);
  const mask = new Int32Array(B * L);
  const labels = new Int32Array(B * L).fill(-100);
  examples.forEach((e, b) => {
    const P = e.sourceIds.length;
    ids.set(e.sourceIds, b * L);
    ids.set(e.targetIds, b * L + P);
    mask.fill(1, b * L, b * L + P + e.targetIds.length);
    labels.set(e.targetIds, b * L + P);
  });
  return {
    inputIds: tensor(ids, [B, L]),
    attentionMask: tensor(mask, [B, L]),
    labels: tensor(labels, [B, L]),
    exampleIds: examples.map((e) => e.index),
  };
}
