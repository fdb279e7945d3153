/** Types of the training engine's native classes (native/bindings/trainer_wrap.cc). */
import { native } from '../native.js';
import type { NativeT5Model } from '../model/t5-model.js';
import type { Tensor } from '../model/tensor.js';

export interface NativeTrainerOptions {
  lr?: number;
  schedule?: 'constant' | 'linear' | 'cosine';
  warmupSteps?: number;
  totalSteps?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Global gradient-norm clip; <= 0 disables. */
  maxGradNorm?: number;
  /** Weight of the KL term when soft labels are given: loss = (1-λ)·CE + λ·KL. */
  kdLambda?: number;
  kdTau?: number;
  /** bf16 autocast on CUDA (default true; ignored on CPU). */
  mixedPrecision?: boolean;
  /** bf16 autocast on CPU too (default false): fp32 weights and loss; ~1.3x faster where the CPU has AVX512-BF16/AMX (oneDNN bf16 GEMMs), slower where it has not. */
  cpuAutocast?: boolean;
  seed?: number;
  lossChunkRows?: number;
}

export interface NativeMicroBatch {
  inputIds: Tensor;
  attentionMask?: Tensor;
  labels: Tensor;
  softLabels?: { cache: NativeSoftLabelCache; exampleIds: number[] };
}

export interface StepResult {
  /** Global step after this call (unchanged when the step was not finite). */
  step: number;
  loss: number;
  ce: number;
  kl: number;
  lr: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  /** Target tokens in the loss. */
  tokens: number;
  sourceTokens: number;
  /** False when the loss or gradient was NaN/Inf: nothing was updated. */
  finite: boolean;
  /** Native wall time of the step. */
  seconds: number;
  /** Forward incl. the fused loss (which also computes the head's gradients), backward, and norm + clipping + AdamW. */
  timings: { forward: number; backward: number; optimizer: number };
}

export interface LossResult {
  loss: number;
  ce: number;
  kl: number;
  tokens: number;
  finite: boolean;
}

export interface TrainerInfo {
  globalStep: number;
  schedule: string;
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  kdLambda: number;
  kdTau: number;
  hasMentor: boolean;
  device: string;
  mixedPrecision: boolean;
  cpuAutocast: boolean;
  decayParameters: string[];
  noDecayParameters: string[];
}

export interface NativeTrainer {
  step(microBatches: NativeMicroBatch[]): Promise<StepResult>;
  /** A native DataParallel (lib/parallel) over this trainer's model, or null. */
  setGradSync(dataParallel: unknown): void;
  evaluateLoss(microBatches: NativeMicroBatch[]): Promise<LossResult>;
  saveCheckpoint(dir: string): Promise<void>;
  /** Resolves to the restored global step. */
  loadCheckpoint(dir: string): Promise<number>;
  globalStep(): number;
  lrAt(step: number): number;
  info(): TrainerInfo;
  dispose(): void;
}

export interface SoftLabelCacheInfo {
  dir: string;
  vocabSize: number;
  k: number;
  tau: number;
  numExamples: number;
  numTokens: number;
  indexDtype: 'I16' | 'I32';
  logprobDtype: 'F32' | 'F16';
  dataBytes: number;
  bytesPerToken: number;
  metadata: Record<string, string>;
}

export interface NativeSoftLabelCache {
  info(): SoftLabelCacheInfo;
  numTokensOf(example: number): number;
  gather(exampleIds: number[], labels: Tensor): { indices: Tensor<Int32Array>; logprobs: Tensor<Float32Array>; restMass: Tensor<Float32Array> };
}

export interface NativeSoftLabelWriter {
  add(mentor: NativeT5Model, batch: { inputIds: Tensor; attentionMask?: Tensor; labels: Tensor }, firstExample: number): Promise<number>;
  addLogits(mentorLogits: Tensor, labels: Tensor, firstExample: number): Promise<number>;
  finish(expectedExamples?: number): Promise<SoftLabelCacheInfo>;
  abort(): void;
}

export interface TrainBinding {
  Trainer: { create(model: NativeT5Model, mentor: NativeT5Model | null, options: NativeTrainerOptions): Promise<NativeTrainer> };
  SoftLabelCache: { open(dir: string): Promise<NativeSoftLabelCache> };
  SoftLabelWriter: new (
    dir: string,
    options: { vocabSize: number; k: number; tau: number; logprobDtype?: 'float32' | 'float16'; shardBytes?: number; metadata?: Record<string, string> },
  ) => NativeSoftLabelWriter;
}

export function trainBinding(): TrainBinding {
  const n = native();
  if (!n.Trainer) throw new Error('mentor-kd: this build of the native addon has no training engine (native/train was left out)');
  return n as unknown as TrainBinding;
}
