/** The native addon: loading (loader.ts) and its one typed description (binding.ts). */
export { callNative, devNative, native, packageRoot } from './loader.js';
export { NATIVE_EXPORTS } from './binding.js';
export type {
  AllreduceGradientsOptions,
  BucketInfo,
  DdpStepResult,
  DevBinding,
  DevNativeBinding,
  IoBinding,
  KdBinding,
  KdInfo,
  LossResult,
  ModelBinding,
  NativeBinding,
  NativeDataParallel,
  NativeGroupOptions,
  NativeMicroBatch,
  NativeProcessGroup,
  NativeSoftLabelCache,
  NativeSoftLabelWriter,
  NativeT5Model,
  NativeTensor,
  NativeTrainer,
  NativeTrainerOptions,
  ParallelBinding,
  ReduceStats,
  RuntimeBinding,
  RuntimeInfo,
  RuntimeSettings,
  SafetensorsContents,
  SoftLabelCacheInfo,
  SoftLabelWriterOptions,
  StepResult,
  StepStatus,
  TrainBinding,
  TrainerInfo,
} from './binding.js';
import { native } from './loader.js';
import type { RuntimeInfo } from './binding.js';
import { checkThreads, threadsForcedFromEnv } from '../runtime/env.js';

/** libtorch's version, CUDA, threads, whether denormals are flushed, and the parallel backend in use. */
export function runtimeInfo(): RuntimeInfo {
  return native().runtime.info();
}

/** Seeds libtorch's default CPU generator: dropout masks and unseeded sampling become reproducible. */
export function manualSeed(seed: number): void {
  native().runtime.manualSeed(seed);
}

/**
 * Sets libtorch's intra-op thread count for all later native work. `n` must be a positive integer
 * and at most the machine's cores unless `force` (or MENTOR_KD_THREADS_FORCE=1): an Error otherwise.
 */
export function setNumThreads(n: number, options: { force?: boolean; setting?: string } = {}): void {
  checkThreads(n, options.setting ?? 'setNumThreads', { force: options.force ?? threadsForcedFromEnv() });
  native().runtime.setNumThreads(n);
}
