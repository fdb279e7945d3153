/**
 * Fused soft-label knowledge-distillation loss (Mentor-KD):
 *
 *   L = (1-λ)·CE(student, labels) + λ·KL(softmax(mentor/τ) ‖ softmax(student/τ))
 *
 * computed by the native op in native/kd/ in one pass over each row, with the gradient
 * w.r.t. the student logits written in the same pass. Defaults follow the paper's code:
 * λ = 0.3, τ = 2, no τ² factor, mean over the non-ignored positions (label -100).
 *
 * Every function is asynchronous (the work runs on a native pool thread). Tensors are
 * `{data, shape}`: logits as Float32Array/Float64Array (cast natively to `studentDtype` /
 * `mentorDtype` when given), labels and top-k indices as Int32Array/BigInt64Array.
 * Bad input rejects with an Error naming the tensor; the process stays up.
 */
import { callNative, native } from '../native.js';
import type { NativeTensor } from '../native.js';

export type KdDType = 'float32' | 'bfloat16' | 'float16' | 'float64';
export type KdReduction = 'mean' | 'sum' | 'batchmean';

export interface KdLossOptions {
  /** Temperature τ > 0 (default 2). */
  tau?: number;
  /** Weight of the KL term λ; CE gets 1-λ (default 0.3). */
  lambda?: number;
  /** Override the CE weight (default 1-λ). */
  hardWeight?: number;
  /** Override the KL weight (default λ). */
  softWeight?: number;
  /**
   * `mean` (default): CE and KL averaged over non-ignored rows; `sum`: summed over them;
   * `batchmean`: CE averaged over non-ignored rows, KL summed over *all* rows and divided
   * by N (F.kl_div(..., reduction="batchmean") on the flattened logits, as the official code).
   */
  reduction?: KdReduction;
  /** Multiply the KL term by τ² (Hinton). Off by default, as in the paper's code. */
  tauSquared?: boolean;
  /** Label value of rows without a target (default -100). */
  ignoreIndex?: number;
  /** Cast the student logits (and, unless mentorDtype is given, the mentor's) to this dtype. */
  studentDtype?: KdDType;
  mentorDtype?: KdDType;
  /** `cpu` (default), `cuda` or `cuda:N`. */
  device?: string;
  /** Return dL/d(student logits) (default true). */
  returnGrad?: boolean;
  /** Write the gradient over the student logits' buffer (saves an N×V tensor natively). */
  inplaceGrad?: boolean;
  /** The upstream gradient dL_total/dL used for `grad` (default 1; tests the backward scaling). */
  upstream?: number;
  /** CUDA: check labels/NaN after the kernel (one device sync). Default true. */
  validate?: boolean;
  /**
   * `fused` (default, autograd-wrapped op), `explicit` (the op without autograd) or
   * `reference` (the unfused libtorch composition, for tests and benchmarks).
   */
  impl?: 'fused' | 'explicit' | 'reference';
}

export interface KdLossResult {
  /** (1-λ)·ce + λ·kl (·τ² when tauSquared). */
  loss: number;
  /** Cross-entropy part (unweighted, reduced). */
  ce: number;
  /** KL part (unweighted, reduced, without τ²). */
  kl: number;
  /** dL/d(student logits), same shape as the student (float32 or float64 data). */
  grad?: NativeTensor;
}

/**
 * Mentor soft labels as top-k per row (e.g. cached on disk):
 * `indices` [N,k] distinct token ids; `logprobs` [N,k] = log softmax(mentorLogits/τ) at those
 * tokens, AT THE SAME τ as the loss (entries with -Infinity are padding); `restMass` [N]
 * (optional) the mentor's probability outside the top-k, default 1 - Σ exp(logprobs).
 * The tail is one "rest" bucket compared with the student's mass outside the top-k; with
 * k = V the loss equals the full one.
 */
export interface KdTopK {
  indices: NativeTensor;
  logprobs: NativeTensor;
  restMass?: NativeTensor;
}

/**
 * The mentor side of the linear variant: full logits [N,V], top-k soft labels, or `{}` for no
 * mentor (plain cross-entropy weighted by 1-λ; kl = 0).
 */
export type KdLinearMentor = { logits: NativeTensor } | { topk: KdTopK } | Record<string, never>;

export interface KdLinearOptions extends Omit<KdLossOptions, 'impl' | 'inplaceGrad'> {
  /** Rows per chunk (default: one chunk's logits ≈ 32 MiB). */
  chunkRows?: number;
  /**
   * `fused` (default); for tests: `kd` = logits by matmul then the fused loss (in place),
   * `reference` = matmul + the unfused composition.
   */
  impl?: 'fused' | 'kd' | 'reference';
}

export interface KdLinearResult {
  loss: number;
  ce: number;
  kl: number;
  /** dL/d(hidden) [N,d]. */
  gradHidden?: NativeTensor;
  /** dL/d(weight) [V,d]. */
  gradWeight?: NativeTensor;
}

export interface KdBenchOptions {
  rows?: number;
  vocab?: number;
  variant?:
    | 'fused'
    | 'fused_inplace'
    | 'unfused'
    | 'topk'
    | 'topk_unfused'
    | 'linear'
    | 'linear_topk'
    | 'linear_kd'
    | 'linear_unfused';
  dtype?: KdDType;
  mentorDtype?: KdDType;
  device?: string;
  iters?: number;
  warmup?: number;
  tau?: number;
  lambda?: number;
  hidden?: number;
  k?: number;
  chunkRows?: number;
  seed?: number;
}

export interface KdBenchResult {
  variant: string;
  rows: number;
  vocab: number;
  dtype: string;
  mentorDtype: string;
  device: string;
  timesMs: number[];
  medianMs: number;
  /** Peak tensor bytes above the inputs during one forward+backward. */
  peakExtraBytes: number;
  inputBytes: number;
  /** CPU: VmHWM - VmRSS around the timed iterations (-1 if unavailable). */
  rssPeakExtraBytes: number;
  memoryMethod: string;
  /** Minimum bytes the fused kernel must move (inputs read once, gradient written once). */
  minTrafficBytes: number;
  loss: number;
  threads: number;
  isa: string;
}

/** The native `kd` binding (native/bindings/kd_binding.cc). */
export interface KdBinding {
  loss(student: NativeTensor, mentor: NativeTensor, labels: NativeTensor, options?: KdLossOptions): Promise<KdLossResult>;
  topk(student: NativeTensor, mentor: KdTopK, labels: NativeTensor, options?: KdLossOptions): Promise<KdLossResult>;
  linear(
    hidden: NativeTensor,
    weight: NativeTensor,
    mentor: KdLinearMentor,
    labels: NativeTensor,
    options?: KdLinearOptions,
  ): Promise<KdLinearResult>;
  topkSoftLabels(mentorLogits: NativeTensor, k: number, tau: number): Promise<Required<KdTopK>>;
  bench(options: KdBenchOptions): Promise<KdBenchResult>;
  info(): { isa: string; cudaKernels: boolean; cudaAvailable: boolean };
  setIsa(name: 'auto' | 'avx512' | 'avx2' | 'sse2'): string;
}

function kd(): KdBinding {
  const b = native().kd as KdBinding | undefined;
  if (!b) throw new Error('mentor-kd: this build of the native addon has no kd binding (native/bindings/kd_binding.cc)');
  return b;
}

/** CE + KL distillation loss from full student [N,V] and mentor [N,V] logits, labels [N]. */
export function kdLoss(
  studentLogits: NativeTensor,
  mentorLogits: NativeTensor,
  labels: NativeTensor,
  options: KdLossOptions = {},
): Promise<KdLossResult> {
  return callNative(async () => kd().loss(studentLogits, mentorLogits, labels, options));
}

/** The same loss with the mentor given as top-k soft labels (see {@link KdTopK}). */
export function kdLossTopK(
  studentLogits: NativeTensor,
  mentor: KdTopK,
  labels: NativeTensor,
  options: KdLossOptions = {},
): Promise<KdLossResult> {
  return callNative(async () => kd().topk(studentLogits, mentor, labels, options));
}

/**
 * Fused lm_head + KD: from hidden [N,d] and weight [V,d] (student logits = hidden·weightᵀ, never
 * materialised whole), mentor as full logits or top-k. Returns grads w.r.t. hidden and weight.
 */
export function kdLossLinear(
  hidden: NativeTensor,
  weight: NativeTensor,
  mentor: KdLinearMentor,
  labels: NativeTensor,
  options: KdLinearOptions = {},
): Promise<KdLinearResult> {
  return callNative(async () => kd().linear(hidden, weight, mentor, labels, options));
}

/** Top-k soft labels at temperature τ from full mentor logits (the cache's writer side). */
export function topkSoftLabels(mentorLogits: NativeTensor, k: number, tau = 2.0): Promise<Required<KdTopK>> {
  return callNative(async () => kd().topkSoftLabels(mentorLogits, k, tau));
}

/** Runs one benchmark variant natively (inputs generated natively). See scripts/bench/kd-loss.ts. */
export function kdBench(options: KdBenchOptions): Promise<KdBenchResult> {
  return callNative(async () => kd().bench(options));
}

/** Which CPU kernel set is active, and whether CUDA kernels were compiled in / a GPU is visible. */
export function kdInfo(): { isa: string; cudaKernels: boolean; cudaAvailable: boolean } {
  return kd().info();
}

/** Forces a CPU kernel set (tests); `auto` re-detects. Throws if the CPU lacks it. */
export function kdSetCpuIsa(name: 'auto' | 'avx512' | 'avx2' | 'sse2'): string {
  return kd().setIsa(name);
}
