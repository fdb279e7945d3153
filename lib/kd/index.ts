/**
 * Fused soft-label knowledge-distillation loss (Mentor-KD):
 *
 *   L = (1-λ)·CE(student, labels) + λ·KL(softmax(mentor/τ) ‖ softmax(student/τ))
 *
 * computed by the native op in native/kd/ in one pass over each row, with the gradient
 * w.r.t. the student logits written in the same pass. Defaults follow the paper's code:
 * λ = 0.3, τ = 2 (KD_DEFAULTS, defined once in lib/config/train-settings.ts), no τ² factor,
 * mean over the non-ignored positions (label -100). The native op has no defaults: these
 * functions pass λ and τ on every call.
 *
 * Every function is asynchronous (the work runs on a native pool thread). Tensors are
 * `{data, shape}`: logits as Float32Array/Float64Array (cast natively to `studentDtype` /
 * `mentorDtype` when given), labels and top-k indices as Int32Array/BigInt64Array.
 * Bad input rejects with an Error naming the tensor; the process stays up.
 */
import { describeIssues, KD_DEFAULTS, kdSettingsSchema } from '../config/train-settings.js';
import type { KdDivergence } from '../config/train-settings.js';
import { callNative, native } from '../native/loader.js';
import type { KdInfo, NativeTensor } from '../native/binding.js';
import type { KdLinearMentor, KdLinearOptions, KdLinearResult, KdLossOptions, KdLossResult, KdNativeOptions, KdTopK } from './types.js';

export type {
  KdBenchOptions,
  KdBenchResult,
  KdDevOptions,
  KdDivergence,
  KdDType,
  KdLinearDevOptions,
  KdLinearMentor,
  KdLinearOptions,
  KdLinearResult,
  KdLossOptions,
  KdLossResult,
  KdNativeOptions,
  KdReduction,
  KdTopK,
} from './types.js';
export { KD_DEFAULTS };

const objectiveSchema = kdSettingsSchema.pick({ divergence: true, beta: true, alpha: true });

/**
 * The options validated (an Error names the field: `kd: beta must be in [0, 1], got 2`) with the
 * library's λ, τ, divergence, β and α filled in where not given (what the native op requires).
 */
export function withKdDefaults<O extends { lambda?: number; tau?: number; divergence?: KdDivergence; beta?: number; alpha?: number }>(
  options: O,
): KdNativeOptions<O> {
  // λ and τ are checked by the op (hardWeight/softWeight may override λ); the new settings here.
  const parsed = objectiveSchema.safeParse({ divergence: options.divergence, beta: options.beta, alpha: options.alpha });
  if (!parsed.success) throw new Error(describeIssues(parsed.error, 'kd'));
  const d = parsed.data;
  return { ...options, lambda: options.lambda ?? KD_DEFAULTS.lambda, tau: options.tau ?? KD_DEFAULTS.tau, ...d };
}

/** CE + KL distillation loss from full student [N,V] and mentor [N,V] logits, labels [N]. */
export function kdLoss(studentLogits: NativeTensor, mentorLogits: NativeTensor, labels: NativeTensor, options: KdLossOptions = {}): Promise<KdLossResult> {
  return callNative(async () => native().kd.loss(studentLogits, mentorLogits, labels, withKdDefaults(options)));
}

/** The same loss with the mentor given as top-k soft labels (see {@link KdTopK}). */
export function kdLossTopK(studentLogits: NativeTensor, mentor: KdTopK, labels: NativeTensor, options: KdLossOptions = {}): Promise<KdLossResult> {
  return callNative(async () => native().kd.topk(studentLogits, mentor, labels, withKdDefaults(options)));
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
  return callNative(async () => native().kd.linear(hidden, weight, mentor, labels, withKdDefaults(options)));
}

/** Top-k soft labels at temperature τ from full mentor logits (the cache's writer side). */
export function topkSoftLabels(mentorLogits: NativeTensor, k: number, tau: number = KD_DEFAULTS.tau): Promise<Required<KdTopK>> {
  return callNative(async () => native().kd.topkSoftLabels(mentorLogits, k, tau));
}

/** Which CPU kernel set is active, and whether CUDA kernels were compiled in / a GPU is visible. */
export function kdInfo(): KdInfo {
  return native().kd.info();
}
