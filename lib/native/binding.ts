/**
 * The one typed description of the native addon (native/bindings/*.cc, native/dev/dev_binding.cc).
 * The shipped addon (build/Release/mentor_kd.node) exports exactly the namespaces of
 * {@link NativeBinding}; the dev addon (mentor_kd_dev.node, built with -DMENTOR_KD_DEV=ON for tests
 * and benchmarks) exports the same plus `dev` ({@link DevNativeBinding}).
 *
 * Types only: loading is lib/native/loader.ts.
 */
import type {
  KdBenchOptions,
  KdBenchResult,
  KdDevOptions,
  KdLinearDevOptions,
  KdLinearMentor,
  KdLinearOptions,
  KdLinearResult,
  KdLossOptions,
  KdLossResult,
  KdNativeOptions,
  KdTopK,
} from '../kd/types.js';
import type { ActivationCheckpointing, KdDivergence, Sharding } from '../config/train-settings.js';
import type {
  ForwardOptions,
  ForwardResult,
  FromConfigOptions,
  GenerateOptions,
  LoadOptions,
  ModelInfo,
  SaveOptions,
  Seq2SeqBatch,
} from '../model/t5-model.js';
import type {
  CausalBatch,
  CausalForwardOptions,
  CausalForwardResult,
  CausalGenerateOptions,
  CausalModelInfo,
} from '../model/causal-model.js';
import type { Tensor } from '../model/tensor.js';
import type { GenerationRequest, GenerationStats } from '../model/generate-stream.js';

/** A tensor crossing the JS/native boundary. */
export type NativeTensor = Tensor;

// ---------------------------------------------------------------------------------------------
// runtime

export interface RuntimeInfo {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaCompiled: boolean;
  threads: number;
  /** Denormals flushed to zero on native threads (MENTOR_KD_FLUSH_DENORMAL=0 turns it off; native/runtime/settings.h says why). */
  flushDenormal: boolean;
  /** CPU tensors of 16 MiB or more mapped on their own (MENTOR_KD_LARGE_BLOCKS). */
  largeBlocks: boolean;
  parallelInfo: string;
}

/** Process-wide settings handed to native code (lib/runtime/env.ts reads them from the environment). */
export interface RuntimeSettings {
  flushDenormal?: boolean;
  /** CPU KD kernel set: auto | avx512 | avx2 | sse2 (a bad or unsupported name keeps auto). */
  kdIsa?: string;
  /** chrome://tracing profile of each train step ('' = off). */
  trainProfile?: string;
  /** chrome://tracing profile of each model forward call ('' = off). */
  modelProfile?: string;
  /** CUDA KD kernels keep a row in shared memory when it fits. */
  cudaRowCache?: boolean;
  /** CPU tensors of 16 MiB or more mapped on their own (native/runtime/large_block_allocator.h); once on, it stays on. */
  largeBlocks?: boolean;
}

export interface RuntimeBinding {
  info(): RuntimeInfo;
  setNumThreads(n: number): void;
  /** Seeds libtorch's default CPU generator (dropout masks, unseeded sampling). */
  manualSeed(seed: number): void;
  /** Applies the given settings (others unchanged); returns info(). */
  configure(settings: RuntimeSettings): RuntimeInfo;
}

// ---------------------------------------------------------------------------------------------
// model

/** The native object's surface (see native/bindings/t5_model_wrap.cc). */
export interface NativeT5Model {
  forward(batch: Seq2SeqBatch, options: ForwardOptions): Promise<ForwardResult>;
  generate(batch: Seq2SeqBatch, options: GenerateOptions): Promise<Tensor<Int32Array>>;
  save(dir: string, options: SaveOptions): Promise<void>;
  parameterNames(): string[];
  getParameter(name: string): Tensor<Float32Array>;
  getGradient(name: string): Tensor<Float32Array> | null;
  setParameter(name: string, value: Tensor): void;
  zeroGrad(): void;
  config(): string;
  info(): ModelInfo;
  dispose(): void;
  /** LoRA (native/t5/lora.h; lib/model/lora.ts): adapters on target_modules, base frozen; `field` names the settings in errors. */
  addLora(options: { r: number; lora_alpha: number; lora_dropout: number; target_modules: string[]; seed: number; field?: string }): void;
  loadLora(dir: string): Promise<void>;
  saveLora(dir: string): Promise<void>;
  loraParameterNames(): string[];
  /** A copy in the model's dtype with any adapters merged in (W + B·A·lora_alpha/r). */
  merged(): Promise<NativeT5Model>;
}

/** The native decoder-only model's surface (see native/bindings/causal_model_wrap.cc). */
export interface NativeCausalLM {
  forward(batch: CausalBatch, options: CausalForwardOptions): Promise<CausalForwardResult>;
  generate(batch: CausalBatch, options: CausalGenerateOptions): Promise<Tensor<Int32Array>>;
  save(dir: string, options: SaveOptions): Promise<void>;
  parameterNames(): string[];
  getParameter(name: string): Tensor<Float32Array>;
  getGradient(name: string): Tensor<Float32Array> | null;
  setParameter(name: string, value: Tensor): void;
  zeroGrad(): void;
  config(): string;
  info(): CausalModelInfo;
  dispose(): void;
}

/** A request as the native engine reads it: lib/model/generate-stream.ts's GenerationRequest plus its tag. */
export interface NativeGenerationRequest extends GenerationRequest {
  tag: number;
}

export interface NativeGenerationResult {
  tag: number;
  sequences: Int32Array[];
  newTokens: number;
}

/** The generation engine (see native/bindings/generator_wrap.cc). */
export interface NativeGenerator {
  submit(requests: NativeGenerationRequest[]): void;
  /** Steps until at least one request finishes; [] when nothing is left. */
  run(): Promise<NativeGenerationResult[]>;
  stats(): GenerationStats;
  dispose(): void;
}

export interface ModelBinding {
  Generator: {
    create(model: NativeT5Model | NativeCausalLM, options: { slots?: number; dtype?: string }): Promise<NativeGenerator>;
    /** GFLOP/s of one [m, k] x [k, n] GEMM (defaults 256 x 512 x 2048, float32, 20 iterations). */
    measureGemm(options: { m?: number; n?: number; k?: number; dtype?: string; iters?: number }): Promise<number>;
  };
  T5Model: {
    load(dir: string, options: LoadOptions): Promise<NativeT5Model>;
    fromConfig(configJson: string, options: FromConfigOptions): Promise<NativeT5Model>;
  };
  CausalLM: {
    load(dir: string, options: LoadOptions): Promise<NativeCausalLM>;
    fromConfig(configJson: string, options: FromConfigOptions): Promise<NativeCausalLM>;
  };
}

// ---------------------------------------------------------------------------------------------
// kd

export interface KdInfo {
  isa: string;
  cudaKernels: boolean;
  cudaAvailable: boolean;
}

/** The native `kd` namespace (native/bindings/kd_binding.cc): λ and τ are required on every call. */
export interface KdBinding {
  loss(student: NativeTensor, mentor: NativeTensor, labels: NativeTensor, options: KdNativeOptions<KdLossOptions>): Promise<KdLossResult>;
  topk(student: NativeTensor, mentor: KdTopK, labels: NativeTensor, options: KdNativeOptions<KdLossOptions>): Promise<KdLossResult>;
  linear(
    hidden: NativeTensor,
    weight: NativeTensor,
    mentor: KdLinearMentor,
    labels: NativeTensor,
    options: KdNativeOptions<KdLinearOptions>,
  ): Promise<KdLinearResult>;
  topkSoftLabels(mentorLogits: NativeTensor, k: number, tau: number): Promise<Required<KdTopK>>;
  info(): KdInfo;
}

// ---------------------------------------------------------------------------------------------
// train

/** The Trainer's settings under HF TrainingArguments' names; every one is required (see lib/train/engine.ts). */
export interface NativeTrainerOptions {
  learning_rate: number;
  lr_scheduler_type: 'constant' | 'linear' | 'cosine';
  warmup_steps: number;
  /** Length of the schedule (linear and cosine decay to 0 there). */
  max_steps: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  weight_decay: number;
  /** Global gradient-norm clip; <= 0 disables. */
  max_grad_norm: number;
  /** Weight of the soft-label term when soft labels are given: loss = (1-λ)·CE + λ·D. */
  lambda: number;
  tau: number;
  /** D of the soft-label term, and its β (jsd) and α (skew-kl, skew-reverse-kl); see KD_DIVERGENCES. */
  divergence: KdDivergence;
  beta: number;
  alpha: number;
  /** bf16 autocast around the transformer (fp32 weights and loss), on whatever device. */
  bf16: boolean;
  /** Seeds the default generators at creation; absent: not seeded. */
  seed?: number;
  /** Rows per chunk of the fused loss (0 or absent: automatic). */
  loss_chunk_rows?: number;
  /** The student's blocks recomputed in backward: none, blocks, every-<k>. */
  activationCheckpointing: ActivationCheckpointing;
  /** train.sharding: AdamW state (zero1) and reduced gradients (zero2) split over the data-parallel ranks. */
  sharding: Sharding;
}

export interface NativeMicroBatch {
  inputIds: Tensor;
  attentionMask?: Tensor;
  labels: Tensor;
  softLabels?: { cache: NativeSoftLabelCache; exampleIds: number[] };
  /** Weight of the CE term, >= 0 (default 1): 0 for on-policy rows, which take the divergence only; step-by-step's per-task means may exceed 1. */
  ceWeight?: number;
  /** MCC-KD's answer-consistency pairs (lib/train/mcc-kd.ts): flattened [B·T] label positions and each pair-position's weight. */
  consistency?: ConsistencyPairs;
}

/** Positions a[p], b[p] (row·T + t in the micro-batch's labels) of one answer token after two rationales of a question, and its weight. */
export interface ConsistencyPairs {
  a: Tensor<Int32Array>;
  b: Tensor<Int32Array>;
  weight: Tensor<Float64Array>;
}

/** How a step ended: `non_finite` when the loss or gradient was NaN/Inf (nothing was updated). */
export type StepStatus = 'ok' | 'non_finite';

export interface StepResult {
  status: StepStatus;
  /** Global step after this call (unchanged when the step was not finite). */
  step: number;
  loss: number;
  ce: number;
  kl: number;
  /** MCC-KD's consistency term as it enters the loss (its weights included), per target token; 0 without pairs. */
  consistency: number;
  lr: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  /** Target tokens in the loss. */
  tokens: number;
  sourceTokens: number;
  /** Native wall time of the step. */
  seconds: number;
  /** Forward incl. the fused loss (which also computes the head's gradients), backward, and norm + clipping + AdamW. */
  timings: { forward: number; backward: number; optimizer: number };
}

export interface LossResult {
  status: StepStatus;
  loss: number;
  ce: number;
  kl: number;
  consistency: number;
  tokens: number;
}

export interface TrainerInfo {
  globalStep: number;
  lr_scheduler_type: string;
  learning_rate: number;
  warmup_steps: number;
  max_steps: number;
  weight_decay: number;
  max_grad_norm: number;
  lambda: number;
  tau: number;
  divergence: KdDivergence;
  beta: number;
  alpha: number;
  bf16: boolean;
  hasMentor: boolean;
  /** The student's family: t5 (encoder-decoder) or causal (decoder-only). */
  family: 't5' | 'causal';
  device: string;
  decayParameters: string[];
  noDecayParameters: string[];
  sharding: Sharding;
  /** Bytes of the optimizer state tensors this rank holds (AdamW moments, masters, step counters). */
  optimizerStateBytes: number;
}

export interface NativeTrainer {
  step(microBatches: NativeMicroBatch[]): Promise<StepResult>;
  /** A native DataParallel (lib/parallel) over this trainer's model, or null. */
  setGradSync(dataParallel: NativeDataParallel | null): void;
  evaluateLoss(microBatches: NativeMicroBatch[]): Promise<LossResult>;
  /** optimizerShardOnly: this rank's optimizer-rank<R>-of-<W>.safetensors only (train.sharding zero1/zero2). */
  saveCheckpoint(dir: string, options?: { optimizerShardOnly?: boolean }): Promise<void>;
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

export interface SoftLabelWriterOptions {
  vocabSize: number;
  k: number;
  tau: number;
  logprobDtype?: 'float32' | 'float16';
  shardBytes?: number;
  metadata?: Record<string, string>;
}

export interface NativeSoftLabelWriter {
  add(mentor: NativeT5Model, batch: { inputIds: Tensor; attentionMask?: Tensor; labels: Tensor }, firstExample: number): Promise<number>;
  addLogits(mentorLogits: Tensor, labels: Tensor, firstExample: number): Promise<number>;
  finish(expectedExamples?: number): Promise<SoftLabelCacheInfo>;
  abort(): void;
}

export interface TrainBinding {
  /** Student and mentor of one family (T5 or causal) and one vocabulary. */
  Trainer: {
    create(model: NativeT5Model | NativeCausalLM, mentor: NativeT5Model | NativeCausalLM | null, options: NativeTrainerOptions): Promise<NativeTrainer>;
  };
  SoftLabelCache: { open(dir: string): Promise<NativeSoftLabelCache> };
  /** Writes `<dir>` through `<dir>.tmp-<pid>`; construction removes stale `<dir>.tmp-<pid>` folders of dead processes. */
  SoftLabelWriter: new (dir: string, options: SoftLabelWriterOptions) => NativeSoftLabelWriter;
}

// ---------------------------------------------------------------------------------------------
// parallel

export interface NativeGroupOptions {
  rank: number;
  worldSize: number;
  localRank?: number;
  masterAddr: string;
  masterPort: number;
  backend: 'gloo' | 'nccl';
  timeoutMs: number;
  /** Gloo's network interfaces, comma-separated (GLOO_SOCKET_IFNAME; '' = choose). */
  socketIfname?: string;
}

export interface NativeProcessGroup {
  rank(): number;
  size(): number;
  backend(): 'gloo' | 'nccl';
  transport(): string;
  timeoutMs(): number;
  broken(): boolean;
  allreduce(t: Tensor, op: 'sum' | 'max' | 'min'): Promise<Tensor>;
  broadcast(t: Tensor, root: number): Promise<Tensor>;
  allgather(t: Tensor): Promise<Tensor[]>;
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array[]>;
  broadcastBytes(bytes: Uint8Array, root: number): Promise<Uint8Array>;
  barrier(): Promise<void>;
  patientBarrier(what: string): Promise<void>;
  destroy(): Promise<void>;
}

export interface ReduceStats {
  /** Gradient buckets all-reduced. */
  buckets: number;
  /** Buckets whose all-reduce started during backward (overlapping it). */
  startedInBackward: number;
  /** Seconds spent waiting for the reductions after backward. */
  waitSeconds: number;
}

export interface BucketInfo {
  names: string[];
  numel: number;
  bytes: number;
  dtype: string;
}

export interface AllreduceGradientsOptions {
  average?: 'mean' | 'sum';
  localTokens?: number;
  scale?: number;
}

export interface NativeDataParallel {
  allreduceGradients(options: AllreduceGradientsOptions): Promise<ReduceStats & { globalTokens?: number }>;
  broadcastParameters(root: number): Promise<void>;
  buckets(): BucketInfo[];
}

export interface ParallelBinding {
  /** False when the addon was built against a libtorch without c10d/Gloo. */
  available: boolean;
  nccl: boolean;
  ProcessGroup: { create(options: NativeGroupOptions): Promise<NativeProcessGroup> };
  DataParallel: { create(group: NativeProcessGroup, model: NativeT5Model, options: { bucketBytes?: number }): NativeDataParallel };
}

// ---------------------------------------------------------------------------------------------
// io

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export interface IoBinding {
  readSafetensors(path: string): Promise<SafetensorsContents>;
  writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string>): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// the addons

/** Everything the shipped addon exports. */
export interface NativeBinding {
  runtime: RuntimeBinding;
  model: ModelBinding;
  kd: KdBinding;
  train: TrainBinding;
  parallel: ParallelBinding;
  io: IoBinding;
}

/** The names of each namespace of the shipped addon (test/exports.test.ts compares the addon with it). */
export const NATIVE_EXPORTS = {
  runtime: ['configure', 'info', 'manualSeed', 'setNumThreads'],
  model: ['CausalLM', 'Generator', 'T5Model'],
  kd: ['info', 'linear', 'loss', 'topk', 'topkSoftLabels'],
  train: ['SoftLabelCache', 'SoftLabelWriter', 'Trainer'],
  parallel: ['DataParallel', 'ProcessGroup', 'available', 'nccl'],
  io: ['readSafetensors', 'writeSafetensors'],
} as const satisfies { [K in keyof NativeBinding]: readonly (keyof NativeBinding[K])[] };

export interface DdpStepResult {
  /** Mean cross-entropy over the union of every rank's target tokens. */
  loss: number;
  /** Mean cross-entropy over this rank's target tokens. */
  localLoss: number;
  localTokens: number;
  globalTokens: number;
  reduce: ReduceStats;
  seconds: number;
}

/** The dev addon's extra namespace (native/dev/dev_binding.cc): test and benchmark hooks. */
export interface DevBinding {
  kdLoss(
    student: NativeTensor,
    mentor: NativeTensor,
    labels: NativeTensor,
    options: KdNativeOptions<KdLossOptions & KdDevOptions>,
  ): Promise<KdLossResult>;
  kdTopk(student: NativeTensor, mentor: KdTopK, labels: NativeTensor, options: KdNativeOptions<KdLossOptions & KdDevOptions>): Promise<KdLossResult>;
  kdLinear(
    hidden: NativeTensor,
    weight: NativeTensor,
    mentor: KdLinearMentor,
    labels: NativeTensor,
    options: KdNativeOptions<KdLinearOptions & KdLinearDevOptions>,
  ): Promise<KdLinearResult>;
  kdBench(options: KdBenchOptions): Promise<KdBenchResult>;
  /** Forces a CPU kernel set (`auto` re-detects); throws if the CPU lacks it. Returns the active one. */
  setKdIsa(name: 'auto' | 'avx512' | 'avx2' | 'sse2'): string;
  /** Threads (a worker and its intra-op team) on which 1e-30f·1e-10f stays a denormal. */
  denormalProbe(): Promise<{ threadsKeepingDenormals: number; threadsLooked: number }>;
  /** MCC-KD's consistency term Σ weight·½[KL(p_a‖p_b) + KL(p_b‖p_a)] over hidden [N,d] · weight [V,d]ᵀ (fp64), and its gradients. */
  answerConsistency(
    hidden: Tensor,
    weight: Tensor,
    pairs: { a: Tensor; b: Tensor; weight: Tensor },
  ): { loss: number; gradHidden: Tensor<Float64Array>; gradWeight: Tensor<Float64Array> };
  /** A CPU tensor of `bytes` allocated through libtorch's CPU allocator, filled with ones and freed: its alignment, sum, and the process's VmRSS while it lived and after. */
  largeBlockProbe(bytes: number): { aligned2MiB: boolean; sum: number; rssWhileLiveKb: number; rssAfterFreeKb: number };
  /** Training-mode dropout of x and its gradient for an upstream gradient of ones. */
  dropoutForTest(x: Tensor, p: number): { out: Tensor<Float32Array>; grad: Tensor<Float32Array> };
  /** p -= lr·grad for every parameter with a gradient, then clears gradients. */
  sgdStep(model: NativeT5Model, lr: number): Promise<void>;
  /** The minimal data-parallel CE forward/backward (gradients all-reduced in buckets during backward). */
  ddpForwardBackward(
    dataParallel: NativeDataParallel,
    microBatches: Seq2SeqBatch[],
    options: { train?: boolean; zeroGrad?: boolean; overlap?: boolean },
  ): Promise<DdpStepResult>;
  /** Where a data-parallel model's gradients live: the distinct storages behind them and the reducer's own bucket buffers. */
  gradientStorage(dataParallel: NativeDataParallel): {
    gradients: number;
    gradientBytes: number;
    storages: number;
    storageBytes: number;
    reducerBufferBytes: number;
  };
  /** zero2's owner-mode reduce from the next reduce on (each rank's slice of the sum reduced to it), without its optimizer. */
  ownerReduce(dataParallel: NativeDataParallel): void;
  /** The reducer's bucket buffers now, the most held and the most buckets reducing at once in the last reduce, and (owner mode) this rank's slice of the sum. */
  reducerBuffers(dataParallel: NativeDataParallel): { bytes: number; peakBytes: number; peakReducing: number; ownedGradient: Tensor<Float32Array> | null };
}

export interface DevNativeBinding extends NativeBinding {
  dev: DevBinding;
}
