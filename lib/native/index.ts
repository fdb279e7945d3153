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

/** Seeds libtorch's default CPU generator: dropout masks and unseeded sampling become reproducible. */
export function manualSeed(seed: number): void {
  native().runtime.manualSeed(seed);
}

/** Sets libtorch's intra-op thread count for all later native work. */
export function setNumThreads(n: number): void {
  native().runtime.setNumThreads(n);
}
