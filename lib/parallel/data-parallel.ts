/**
 * Data parallelism over a ProcessGroup for one T5Model.
 *
 * - `broadcastParameters()` makes every replica equal to rank 0's at the start.
 * - `forwardBackward(microBatches)` is one data-parallel forward/backward: it all-reduces the
 *   target-token count T first, backpropagates every micro-batch's summed loss divided by T
 *   (mean_mb · n_mb / T), and sums gradients across ranks in buckets while backward is still
 *   running. Every rank ends with the gradient of the mean loss over the union of all ranks'
 *   tokens — exact for uneven token counts and any number of micro-batches — and then applies
 *   the same optimizer step.
 * - `allreduceGradients()` is the same reduction after a backward done elsewhere (e.g. by
 *   `model.forward(batch, {backward: true})`, whose gradient is of the mean over this rank's
 *   tokens: pass `localTokens` and each rank's gradient is weighted by localTokens / T).
 */
import { callNative } from '../native.js';
import type { Seq2SeqBatch, T5Model } from '../model/t5-model.js';
import type { ProcessGroup } from './process-group.js';
import { distBinding, type BucketInfo, type ForwardBackwardResult, type NativeDataParallel, type ReduceStats } from './native-types.js';

export interface DataParallelOptions {
  /** Bucket size for the gradient all-reduce (default 25 MiB, as torch DDP). */
  bucketBytes?: number;
}

export interface ForwardBackwardOptions {
  /** Dropout on (default true). */
  train?: boolean;
  /** Clear gradients first (default true). */
  zeroGrad?: boolean;
  /** All-reduce buckets while backward runs (default true); false reduces everything after it. */
  overlap?: boolean;
}

export interface AllreduceGradientsOptions {
  /** 'mean' (default): divide the sum by the world size; 'sum': leave it. */
  average?: 'mean' | 'sum';
  /** This rank's target tokens: gradients are weighted by localTokens / Σ localTokens (overrides average). */
  localTokens?: number;
  /** Explicit pre-scale of this rank's gradient before summing (excludes localTokens). */
  scale?: number;
}

export class DataParallel {
  private constructor(
    private readonly handle: NativeDataParallel,
    readonly group: ProcessGroup,
    readonly model: T5Model,
  ) {}

  /** Buckets the model's parameters and hooks their gradient accumulators; no communication. */
  static create(group: ProcessGroup, model: T5Model, options: DataParallelOptions = {}): DataParallel {
    if (options.bucketBytes !== undefined && (!Number.isInteger(options.bucketBytes) || options.bucketBytes < 1)) {
      throw new Error(`bucketBytes must be a positive integer, got ${options.bucketBytes}`);
    }
    const h = distBinding().DataParallel.create(group.native, model.native, options);
    return new DataParallel(h, group, model);
  }

  /** The native handle (for the training engine's data-parallel step). */
  get native(): NativeDataParallel {
    return this.handle;
  }

  /** Rank root's parameters on every rank (coalesced per bucket). */
  broadcastParameters(root = 0): Promise<void> {
    return callNative(() => this.handle.broadcastParameters(root));
  }

  /** One data-parallel forward/backward over this rank's micro-batches (cross-entropy). */
  forwardBackward(microBatches: readonly Seq2SeqBatch[], options: ForwardBackwardOptions = {}): Promise<ForwardBackwardResult> {
    if (microBatches.length === 0) throw new Error('forwardBackward: microBatches is empty');
    return callNative(() => this.handle.forwardBackward([...microBatches], options));
  }

  /** Sums (or averages) the gradients already in the model across ranks. */
  allreduceGradients(options: AllreduceGradientsOptions = {}): Promise<ReduceStats & { globalTokens?: number }> {
    if (options.localTokens !== undefined && (!Number.isInteger(options.localTokens) || options.localTokens < 0)) {
      throw new Error(`localTokens must be a non-negative integer, got ${options.localTokens}`);
    }
    return callNative(() => this.handle.allreduceGradients(options));
  }

  /** The gradient buckets, in all-reduce order. */
  buckets(): BucketInfo[] {
    return this.handle.buckets();
  }
}

/**
 * p -= lr · grad for every parameter, then clears the gradients: the minimal optimizer used by the
 * distributed tests and benchmark (the training engine has AdamW).
 */
export function sgdStep(model: T5Model, lr: number): Promise<void> {
  if (!Number.isFinite(lr)) throw new Error(`lr must be a finite number, got ${lr}`);
  return callNative(() => distBinding().sgdStep(model.native, lr));
}
