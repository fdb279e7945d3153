/**
 * Types of the KD loss's native calls (shared by lib/kd and the typed binding in lib/native;
 * this module imports neither, so they do not import each other).
 */
import type { Tensor as NativeTensor } from '../model/tensor.js';
import type { KdDivergence } from '../config/train-settings.js';

export type { KdDivergence };

export type KdDType = 'float32' | 'bfloat16' | 'float16' | 'float64';
export type KdReduction = 'mean' | 'sum' | 'batchmean';

export interface KdLossOptions {
  /** Temperature τ > 0 (default KD_DEFAULTS.tau = 2). */
  tau?: number;
  /** Weight of the KL term λ; CE gets 1-λ (default KD_DEFAULTS.lambda = 0.3). */
  lambda?: number;
  /**
   * The soft-label term's divergence D (default KD_DEFAULTS.divergence = 'forward-kl'): forward-kl,
   * reverse-kl, jsd (β), skew-kl (α), skew-reverse-kl (α), tvd; see KdSettings in lib/config/train-settings.ts.
   */
  divergence?: KdDivergence;
  /** jsd's β ∈ [0,1] (default 0.5); β = 0 is forward-kl and β = 1 reverse-kl exactly, as TRL. */
  beta?: number;
  /** skew-kl's / skew-reverse-kl's α ∈ [0,1) (default 0.1). */
  alpha?: number;
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
  /** CUDA: check labels/NaN after the kernel (one device sync). Default true. */
  validate?: boolean;
}

/** What the native calls receive: λ, τ, divergence, β and α always given (lib/kd fills in the defaults). */
export type KdNativeOptions<O> = O & { lambda: number; tau: number; divergence: KdDivergence; beta: number; alpha: number };

/**
 * Test-only options of the dev addon's dev.kdLoss/kdTopk: `impl` picks `fused` (default, the
 * autograd-wrapped op), `explicit` (the op without autograd) or `reference` (the unfused libtorch
 * composition); `upstream` is the upstream gradient dL_total/dL used for `grad` (default 1).
 */
export interface KdDevOptions {
  impl?: 'fused' | 'explicit' | 'reference';
  upstream?: number;
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

export interface KdLinearOptions extends Omit<KdLossOptions, 'inplaceGrad'> {
  /** Rows per chunk (default: one chunk's logits ≈ 32 MiB). */
  chunkRows?: number;
}

/**
 * Test-only options of the dev addon's dev.kdLinear: `impl` `fused` (default), `kd` = logits by
 * matmul then the fused loss (in place), `reference` = matmul + the unfused composition.
 */
export interface KdLinearDevOptions {
  impl?: 'fused' | 'kd' | 'reference';
  upstream?: number;
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
  variant?: 'fused' | 'fused_inplace' | 'unfused' | 'topk' | 'topk_unfused' | 'linear' | 'linear_topk' | 'linear_kd' | 'linear_unfused';
  dtype?: KdDType;
  mentorDtype?: KdDType;
  device?: string;
  iters?: number;
  warmup?: number;
  tau: number;
  lambda: number;
  divergence: KdDivergence;
  beta: number;
  alpha: number;
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
