/**
 * Offline mentor soft labels: the mentor runs once over the training set, teacher-forced, and its
 * top-k distribution per target token (plus the tail mass) is written to a cache that student
 * training reads instead of running the mentor (format: native/train/soft_labels.h).
 */
import { callNative, native } from '../native/loader.js';
import type { NativeSoftLabelCache, SoftLabelCacheInfo } from '../native/binding.js';
import type { T5Model } from '../model/t5-model.js';
import { collate } from './batches.js';
import type { TokenizedDataset } from './data.js';

export type { SoftLabelCacheInfo } from '../native/binding.js';

export class SoftLabelCache {
  private constructor(readonly native: NativeSoftLabelCache) {}

  static async open(dir: string): Promise<SoftLabelCache> {
    return new SoftLabelCache(await callNative(() => native().train.SoftLabelCache.open(dir)));
  }

  info(): SoftLabelCacheInfo {
    return this.native.info();
  }

  /** The training-data fingerprint the cache was built for. */
  get fingerprint(): string | undefined {
    return this.info().metadata.train_fingerprint;
  }
}

export interface BuildSoftLabelOptions {
  mentor: T5Model;
  dataset: TokenizedDataset;
  dir: string;
  /** Tokens kept per position (default 32); the rest is one tail bucket. */
  k?: number;
  /** Temperature of the stored distribution; must equal the KD loss's (default 2, the paper's). */
  tau?: number;
  batchSize?: number;
  logprobDtype?: 'float32' | 'float16';
  shardBytes?: number;
  padId: number;
  onProgress?: (done: number, total: number) => void;
}

/** Runs the mentor over the dataset in order and writes the cache atomically. */
export async function buildSoftLabelCache(options: BuildSoftLabelOptions): Promise<SoftLabelCacheInfo> {
  const { mentor, dataset, dir } = options;
  const k = options.k ?? 32;
  const tau = options.tau ?? 2;
  const batchSize = options.batchSize ?? 16;
  if (dataset.examples.length === 0) throw new Error(`soft-label cache: ${dataset.name} is empty`);
  const vocabSize = mentor.info().vocabSize;
  const writer = new (native().train.SoftLabelWriter)(dir, {
    vocabSize,
    k,
    tau,
    logprobDtype: options.logprobDtype ?? 'float32',
    shardBytes: options.shardBytes,
    metadata: { train_fingerprint: dataset.fingerprint, dataset: dataset.name, mentor: mentor.info().sourceDir || 'in-memory model' },
  });
  try {
    for (let start = 0; start < dataset.examples.length; start += batchSize) {
      const batch = collate(dataset.examples.slice(start, start + batchSize), options.padId);
      await callNative(() => writer.add(mentor.native, batch, start));
      options.onProgress?.(Math.min(start + batchSize, dataset.examples.length), dataset.examples.length);
    }
    return await callNative(() => writer.finish(dataset.examples.length));
  } catch (err) {
    try {
      writer.abort();
    } catch {
      /* the original error matters more */
    }
    throw err;
  }
}
