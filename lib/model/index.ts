/** Models: the native FlanT5 (load, forward, generate, save), its tokenizer, tensors, and the HF reference check. */
export { T5Model } from './t5-model.js';
export type {
  Device,
  DType,
  LoadOptions,
  FromConfigOptions,
  Seq2SeqBatch,
  ForwardOptions,
  ForwardResult,
  GenerateOptions,
  SaveOptions,
  ModelInfo,
} from './t5-model.js';
export type { GenerationRequest, GenerationResult, GenerateStreamOptions, GenerationStats } from './generate-stream.js';
export { Tokenizer, buildT5Tokenizer } from './tokenizer.js';
export type { EncodeBatchOptions } from './tokenizer.js';
export { tensor, padBatch, rowsOf, numel } from './tensor.js';
export type { Tensor, TensorData } from './tensor.js';
export { checkAgainstReference, findReferenceCases } from './check.js';
export type { CheckResult } from './check.js';
