/**
 * TrainEngine: the native train step behind a small TS class. One `step()` is one optimizer step
 * (forward, loss, backward over all micro-batches, clipping, AdamW) in a single native call on a
 * worker thread.
 *
 * Options use the names of HF TrainingArguments (and `lambda`/`tau` for the KD loss), the same
 * names as train() and the native Trainer. Omitted ones take the library defaults
 * (TRAIN_DEFAULTS / KD_DEFAULTS, lib/config/train-settings.ts); the native side has none.
 */
import { KD_DEFAULTS, resolveBf16, TRAIN_DEFAULTS } from '../config/train-settings.js';
import { callNative, native } from '../native/loader.js';
import type { LossResult, NativeMicroBatch, NativeTrainer, NativeTrainerOptions, StepResult, TrainerInfo } from '../native/binding.js';
import type { DataParallel } from '../parallel/data-parallel.js';
import type { CausalLM } from '../model/causal-model.js';
import type { T5Model } from '../model/t5-model.js';
import type { CollatedBatch } from './batches.js';
import type { SoftLabelCache } from './soft-labels.js';

export type { LossResult, NativeTrainerOptions, StepResult, StepStatus, TrainerInfo } from '../native/binding.js';

export interface EngineOptions extends Partial<NativeTrainerOptions> {
  /** Frozen mentor run online, teacher-forced, in the same step (its logits feed the KD loss); of the student's family. */
  mentor?: T5Model | CausalLM;
}

/** The native Trainer's options: the given ones, the library defaults for the rest (bf16: on for CUDA, off on CPU). */
export function nativeTrainerOptions(options: Omit<EngineOptions, 'mentor'>, device: string): NativeTrainerOptions {
  const t = TRAIN_DEFAULTS;
  return {
    learning_rate: options.learning_rate ?? t.learning_rate,
    lr_scheduler_type: options.lr_scheduler_type ?? t.lr_scheduler_type,
    warmup_steps: options.warmup_steps ?? t.warmup_steps,
    max_steps: options.max_steps ?? 0,
    adam_beta1: options.adam_beta1 ?? t.adam_beta1,
    adam_beta2: options.adam_beta2 ?? t.adam_beta2,
    adam_epsilon: options.adam_epsilon ?? t.adam_epsilon,
    weight_decay: options.weight_decay ?? t.weight_decay,
    max_grad_norm: options.max_grad_norm ?? t.max_grad_norm,
    lambda: options.lambda ?? KD_DEFAULTS.lambda,
    tau: options.tau ?? KD_DEFAULTS.tau,
    divergence: options.divergence ?? KD_DEFAULTS.divergence,
    beta: options.beta ?? KD_DEFAULTS.beta,
    alpha: options.alpha ?? KD_DEFAULTS.alpha,
    bf16: resolveBf16(options.bf16, device),
    activationCheckpointing: options.activationCheckpointing ?? t.activationCheckpointing,
    sharding: options.sharding ?? t.sharding,
    // Unseeded unless asked: the engine seeds the default generators only when given a seed.
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.loss_chunk_rows !== undefined ? { loss_chunk_rows: options.loss_chunk_rows } : {}),
  };
}

export class TrainEngine {
  private constructor(
    private handle: NativeTrainer | null,
    readonly softLabels: SoftLabelCache | undefined,
  ) {}

  /**
   * A T5 student takes collate() batches; a CausalLM student collateCausal() batches (prompt +
   * completion, labels on the completion) and an online CausalLM mentor of the same vocabulary.
   */
  static async create(model: T5Model | CausalLM, options: EngineOptions = {}, softLabels?: SoftLabelCache): Promise<TrainEngine> {
    const { mentor, ...rest } = options;
    if (mentor && softLabels) throw new Error('TrainEngine: give soft labels either as an online mentor or as a cache, not both');
    const settings = nativeTrainerOptions(rest, model.info().device);
    const h = await callNative(() => native().train.Trainer.create(model.native, mentor ? mentor.native : null, settings));
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
      ...(b.ceWeight !== undefined ? { ceWeight: b.ceWeight } : {}),
      ...(b.consistency ? { consistency: b.consistency } : {}),
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

  /** train.sharding: this rank's optimizer-rank<R>-of-<W>.safetensors into dir (saveCheckpoint writes the model and its caller's shard). */
  saveOptimizerShard(dir: string): Promise<void> {
    return callNative(() => this.native.saveCheckpoint(dir, { optimizerShardOnly: true }));
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
