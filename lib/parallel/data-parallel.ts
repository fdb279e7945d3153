/**
 * Data parallelism over a ProcessGroup for one T5Model.
 *
 * - `broadcastParameters()` makes every replica equal to rank 0's at the start.
 * - The training engine's step (lib/train/engine.ts setDistributed) sums token counts, gradients
 *   and loss sums over the ranks through this object, all-reducing gradient buckets while backward
 *   is still running. (The minimal CE + SGD data-parallel step of tests and benchmarks is the dev
 *   addon's dev.ddpForwardBackward.)
 * - `allreduceGradients()` sums gradients after a backward done elsewhere (e.g. by
 *   `model.forward(batch, {backward: true})`, whose gradient is of the mean over this rank's
 *   tokens: pass `localTokens` and each rank's gradient is weighted by localTokens / T).
 */
import { callNative, native } from '../native/loader.js';
import type { BucketInfo, NativeDataParallel, ReduceStats } from '../native/binding.js';
import type { T5Model } from '../model/t5-model.js';
import type { ProcessGroup } from './process-group.js';

export type { BucketInfo, ReduceStats } from '../native/binding.js';

export interface DataParallelOptions {
  /** Bucket size for the gradient all-reduce (default 25 MiB, as torch DDP). */
  bucketBytes?: number;
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
    const h = native().parallel.DataParallel.create(group.native, model.native, options);
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
