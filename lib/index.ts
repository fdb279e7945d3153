/** mentor-kd public API. */
export { native, setNumThreads, manualSeed } from './native.js';
export type { RuntimeInfo } from './native.js';
export { T5Model } from './model/t5-model.js';
export type {
  Device, DType, LoadOptions, FromConfigOptions, Seq2SeqBatch, ForwardOptions, ForwardResult, GenerateOptions, SaveOptions, ModelInfo,
} from './model/t5-model.js';
export { Tokenizer, buildT5Tokenizer } from './model/tokenizer.js';
export { tensor, padBatch, rowsOf, numel } from './model/tensor.js';
export type { Tensor, TensorData } from './model/tensor.js';
export { readSafetensors, writeSafetensors } from './model/safetensors.js';
export { checkAgainstReference } from './model/check.js';
export * from './tasks/index.js';
export * from './teacher/index.js';
export { kdLoss, kdLossTopK, kdLossLinear, topkSoftLabels, kdBench, kdInfo, kdSetCpuIsa } from './kd/index.js';
export type {
  KdLossOptions, KdLossResult, KdTopK, KdLinearMentor, KdLinearOptions, KdLinearResult, KdBenchOptions, KdBenchResult, KdDType, KdReduction,
} from './kd/index.js';
export * from './train/index.js';
export * from './parallel/index.js';
