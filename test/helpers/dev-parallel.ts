/**
 * The minimal data-parallel CE + SGD step of the distributed tests and benchmark, from the dev
 * addon (native/dev/ddp_step.h); the library's training step is lib/train/engine.ts.
 */
import { callNative, devNative } from '../../lib/native/loader.js';
import type { DdpStepResult } from '../../lib/native/binding.js';
import type { Seq2SeqBatch, T5Model } from '../../lib/model/t5-model.js';
import type { DataParallel } from '../../lib/parallel/data-parallel.js';

export type ForwardBackwardResult = DdpStepResult;

export interface ForwardBackwardOptions {
  /** Dropout on (default true). */
  train?: boolean;
  /** Clear gradients first (default true). */
  zeroGrad?: boolean;
  /** All-reduce buckets while backward runs (default true); false reduces everything after it. */
  overlap?: boolean;
}

/**
 * One data-parallel forward/backward over this rank's micro-batches (cross-entropy): all-reduces the
 * target-token count T first, backpropagates every micro-batch's summed loss divided by T, and sums
 * gradients across ranks in buckets while backward is still running.
 */
export function forwardBackward(dp: DataParallel, microBatches: readonly Seq2SeqBatch[], options: ForwardBackwardOptions = {}): Promise<ForwardBackwardResult> {
  if (microBatches.length === 0) throw new Error('forwardBackward: microBatches is empty');
  return callNative(() => devNative().dev.ddpForwardBackward(dp.native, [...microBatches], options));
}

/** p -= lr · grad for every parameter, then clears the gradients. */
export function sgdStep(model: T5Model, lr: number): Promise<void> {
  if (!Number.isFinite(lr)) throw new Error(`lr must be a finite number, got ${lr}`);
  return callNative(() => devNative().dev.sgdStep(model.native, lr));
}
