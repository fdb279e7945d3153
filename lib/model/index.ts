/** Models: the native FlanT5 and decoder-only CausalLM (load, forward, generate, save), the auto-loader, the tokenizer, tensors, and the HF reference check. */
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
export { CausalLM } from './causal-model.js';
export type { CausalBatch, CausalForwardOptions, CausalForwardResult, CausalGenerateOptions, CausalModelInfo } from './causal-model.js';
export { loadModel, modelFamily } from './auto-model.js';
export type { ModelFamily } from './auto-model.js';
export type { GenerationRequest, GenerationResult, GenerateStreamOptions, GenerationStats } from './generate-stream.js';
export { Tokenizer, buildT5Tokenizer, buildByteLevelBpeTokenizer } from './tokenizer.js';
export type { EncodeBatchOptions } from './tokenizer.js';
export { PromptFormat } from './chat-template.js';
export type { ChatMessage, PromptFormatRecord } from './chat-template.js';
export { tensor, padBatch, rowsOf, numel } from './tensor.js';
export type { Tensor, TensorData } from './tensor.js';
export { checkAgainstReference, findReferenceCases } from './check.js';
export type { CheckResult } from './check.js';
export { addLora, loadLora, saveLora, mergeLora, mergedModel, loraInfo, loraParameterNames, trainableParameterCount } from './lora.js';
export type { LoraInfo, MergeLoraOptions } from './lora.js';
export { loraParameterCount } from './lora-settings.js';
export type { LoraSettings, LoraSettingsInput } from './lora-settings.js';
