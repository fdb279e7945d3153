/**
 * TrainEngine: the native train step behind a small TS class. One `step()` is one optimizer step
 * (forward, loss, backward over all micro-batches, clipping, AdamW) in a single native call on a
 * worker thread.
 */
import { callNative } from '../native.js';
import type { DataParallel } from '../parallel/data-parallel.js';
import type { T5Model } from '../model/t5-model.js';
import type { CollatedBatch } from './batches.js';
import {
  trainBinding,
  type LossResult,
  type NativeMicroBatch,
  type NativeTrainer,
  type NativeTrainerOptions,
  type StepResult,
  type TrainerInfo,
} from './native-types.js';
import type { SoftLabelCache } from './soft-labels.js';

export type { LossResult, StepResult, TrainerInfo, NativeTrainerOptions } from './native-types.js';

export interface EngineOptions extends NativeTrainerOptions {
  /** Frozen mentor run online, teacher-forced, in the same step (its logits feed the KD loss). */
  mentor?: T5Model;
}

export class TrainEngine {
  private constructor(
    private handle: NativeTrainer | null,
    readonly softLabels: SoftLabelCache | undefined,
  ) {}

  static async create(model: T5Model, options: EngineOptions = {}, softLabels?: SoftLabelCache): Promise<TrainEngine> {
    const { mentor, ...native } = options;
    if (mentor && softLabels) throw new Error('TrainEngine: give soft labels either as an online mentor or as a cache, not both');
    const h = await callNative(() => trainBinding().Trainer.create(model.native, mentor ? mentor.native : null, native));
    return new TrainEngine(h, softLabels);
  }

  private get native(): NativeTrainer {
    if (!this.handle) throw new Error('TrainEngine: used after dispose()');
    return this.handle;
  }

  /** Micro-batches for the native call; attaches the cache's soft labels when there is a cache. */
  microBatches(batches: readonly CollatedBatch[]): NativeMicroBatch[] {
    return batches.map((b) => ({
      inputIds: b.inputIds,
      attentionMask: b.attentionMask,
      labels: b.labels,
      ...(this.softLabels ? { softLabels: { cache: this.softLabels.native, exampleIds: b.exampleIds } } : {}),
    }));
  }

  /** One optimizer step over the micro-batches (gradient accumulation when more than one). */
  step(batches: readonly CollatedBatch[]): Promise<StepResult> {
    return callNative(() => this.native.step(this.microBatches(batches)));
  }

  /**
   * Data-parallel steps (lib/parallel): token counts, gradients and loss sums are summed over the
   * DataParallel's ranks inside each native step. null turns it off. Call between steps.
   */
  setDistributed(dp: DataParallel | null): void {
    this.native.setGradSync(dp ? dp.native : null);
  }

  /** The training loss without dropout or update. */
  evaluateLoss(batches: readonly CollatedBatch[]): Promise<LossResult> {
    return callNative(() => this.native.evaluateLoss(this.microBatches(batches)));
  }

  saveCheckpoint(dir: string): Promise<void> {
    return callNative(() => this.native.saveCheckpoint(dir));
  }

  /** Restores model, optimizer, global step and RNG state; refuses another architecture. */
  loadCheckpoint(dir: string): Promise<number> {
    return callNative(() => this.native.loadCheckpoint(dir));
  }

  get globalStep(): number {
    return this.native.globalStep();
  }

  lrAt(step: number): number {
    return this.native.lrAt(step);
  }

  info(): TrainerInfo {
    return this.native.info();
  }

  /** Frees the optimizer state now (a step in flight finishes first). */
  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
  }
}
