/**
 * Decoder-only causal LMs of the Llama and Qwen2 families running in libtorch. Numerically follows
 * HF transformers' LlamaForCausalLM / Qwen2ForCausalLM (RMSNorm, RoPE with rope_theta and linear or
 * dynamic rope_scaling, grouped-query attention, SwiGLU, optional q/k/v bias, tied or untied head)
 * and reads/writes HF model directories (config.json, model.safetensors or shards,
 * generation_config.json) under HF's parameter names.
 *
 * Heavy calls (load, forward, generate, save) run on a native worker thread and return Promises.
 * Call dispose() when done; the garbage collector frees the native model too, as a backstop.
 */
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { callNative, native } from '../native/loader.js';
import type { NativeCausalLM } from '../native/binding.js';
import { generateStream } from './generate-stream.js';
import type { GenerateStreamOptions, GenerationRequest, GenerationResult } from './generate-stream.js';
import type { Tensor } from './tensor.js';
import type { DType, FromConfigOptions, LoadOptions, SaveOptions } from './t5-model.js';

export interface CausalBatch {
  /** [B, T] token ids. */
  inputIds: Tensor;
  /** [B, T] 1 for real tokens, 0 for padding (default: all ones). */
  attentionMask?: Tensor;
  /**
   * [B, T] targets aligned with inputIds (HF's convention: the logit at t predicts labels[t + 1]);
   * -100 marks positions left out of the loss (prompt and padding).
   */
  labels?: Tensor;
  /** [B, T] RoPE positions (default 0..T-1, as HF's forward). */
  positionIds?: Tensor;
}

export interface CausalForwardOptions {
  /** Backpropagate the loss into the parameters' gradients (accumulating). Needs labels. */
  backward?: boolean;
  returnLogits?: boolean;
  /** The final-norm output [B, T, hidden_size] (what the head multiplies). */
  returnHidden?: boolean;
}

export interface CausalForwardResult {
  /** Mean cross-entropy over the non-ignored shifted labels (present when labels were given). */
  loss?: number;
  numLossTokens?: number;
  /** [B, T, V] float32 (HF casts logits to float32 in every dtype). */
  logits?: Tensor<Float32Array>;
  hidden?: Tensor<Float32Array>;
}

export interface CausalGenerateOptions {
  /** New tokens at most (default 64). */
  maxNewTokens?: number;
  /** Sample instead of greedy decoding (HF's warpers: temperature, then top-k, then top-p). */
  doSample?: boolean;
  /** Sampling temperature, > 0 (default 1). */
  temperature?: number;
  /** Keep the k most likely tokens when sampling (HF's default 50; 0 disables). */
  topK?: number;
  /** Nucleus sampling threshold in (0, 1] (1 disables). */
  topP?: number;
  /** Sequences per prompt (needs doSample when > 1); prompt b's are rows b*n .. b*n+n-1 of the result. */
  numReturnSequences?: number;
  /**
   * One seed for the whole call: prompt b's sequence j draws its token at step t from
   * (seed, b*n + j, t), as one generation-engine request of B*n samples. Default: random.
   */
  seed?: number;
  /**
   * One seed per prompt instead: prompt b's sequence j draws from (seeds[b], j, t), so a prompt's
   * samples are the same whatever else shares the batch (the generation engine's per-request seed).
   */
  seeds?: number[];
}

export interface CausalModelInfo {
  modelType: 'llama' | 'qwen2';
  dtype: DType;
  device: string;
  numParameters: number;
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  padTokenId: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  tieWordEmbeddings: boolean;
  sourceDir: string;
}

export type { NativeCausalLM } from '../native/binding.js';

/** Options that are counts must be integers in range: native code truncates (1.5 would become 1). */
function checkCount(where: string, options: object, name: string, min: number): void {
  const v = (options as Record<string, unknown>)[name];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new Error(`${where}: ${name} must be an integer, got ${typeof v === 'number' ? v : JSON.stringify(v)}`);
  }
  if (v < min) throw new Error(`${where}: ${name} must be >= ${min}, got ${v}`);
}

/** Tokenizer and HF side files copied along by save() when the model came from a directory. */
const SIDE_FILES = /^(tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt|added_tokens\.json)$/;

export class CausalLM {
  private constructor(private handle: NativeCausalLM | null) {}

  /** Loads a HF model directory whose config.json has model_type llama or qwen2. */
  static async load(dir: string, options: LoadOptions = {}): Promise<CausalLM> {
    checkCount('CausalLM.load', options, 'memoryBudgetBytes', 0);
    const h = await callNative(() => native().model.CausalLM.load(dir, options));
    return new CausalLM(h);
  }

  /** A randomly initialised model from a HF config (object or JSON text) with model_type llama or qwen2. */
  static async fromConfig(config: object | string, options: FromConfigOptions = {}): Promise<CausalLM> {
    const text = typeof config === 'string' ? config : JSON.stringify(config);
    checkCount('CausalLM.fromConfig', options, 'memoryBudgetBytes', 0);
    checkCount('CausalLM.fromConfig', options, 'seed', 0);
    const h = await callNative(() => native().model.CausalLM.fromConfig(text, options));
    return new CausalLM(h);
  }

  /** The native handle, for other native-backed classes. */
  get native(): NativeCausalLM {
    if (!this.handle) throw new Error('CausalLM: used after dispose()');
    return this.handle;
  }

  forward(batch: CausalBatch, options: CausalForwardOptions = {}): Promise<CausalForwardResult> {
    return callNative(() => this.native.forward(batch, options));
  }

  /**
   * Greedy or sampled generation with a KV cache from LEFT-padded prompts (positions from the mask,
   * as HF). Sampling uses the generation engine's counter-based sampler, so a seeded call is
   * reproducible. Returns [B * n, P + steps] ids: the prompts, then the new tokens; rows that
   * emitted EOS are padded afterwards with the pad id (the first EOS when the model has none).
   */
  generate(batch: CausalBatch, options: CausalGenerateOptions = {}): Promise<Tensor<Int32Array>> {
    try {
      checkCount('generate', options, 'maxNewTokens', 1);
      checkCount('generate', options, 'topK', 0);
      checkCount('generate', options, 'numReturnSequences', 1);
      checkCount('generate', options, 'seed', 0);
      if (options.seeds !== undefined) {
        if (!Array.isArray(options.seeds)) throw new Error('generate: seeds must be an array of integers >= 0 (one per prompt)');
        options.seeds.forEach((s, i) => checkCount('generate', { [`seeds[${i}]`]: s }, `seeds[${i}]`, 0));
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return callNative(() => this.native.generate(batch, options));
  }

  /**
   * Generation on the continuous-batching engine (lib/model/generate-stream.ts), CPU models only:
   * each request is one unpadded prompt, prefilled once for all its samples; yields each request's
   * result as it finishes, its sequences the new tokens only (EOS included when reached). Greedy ids
   * equal generate()'s; a request's samples depend only on its own seed.
   */
  generateStream(requests: readonly GenerationRequest[], options: GenerateStreamOptions = {}): AsyncGenerator<GenerationResult> {
    return generateStream(this.native, requests, options);
  }

  /** Writes a directory HF's from_pretrained loads; copies tokenizer files from the source dir. */
  async save(dir: string, options: SaveOptions = {}): Promise<void> {
    checkCount('save', options, 'maxShardBytes', 0);
    await callNative(() => this.native.save(dir, options));
    const src = this.info().sourceDir;
    if (src && src !== dir) {
      for (const f of await readdir(src)) if (SIDE_FILES.test(f)) await copyFile(join(src, f), join(dir, f));
    }
  }

  parameterNames(): string[] {
    return this.native.parameterNames();
  }

  getParameter(name: string): Tensor<Float32Array> {
    return this.native.getParameter(name);
  }

  /** The accumulated gradient of a parameter, or null before any backward pass. */
  getGradient(name: string): Tensor<Float32Array> | null {
    return this.native.getGradient(name);
  }

  setParameter(name: string, value: Tensor): void {
    this.native.setParameter(name, value);
  }

  zeroGrad(): void {
    this.native.zeroGrad();
  }

  /** config.json as this model would save it. */
  config(): Record<string, unknown> {
    return JSON.parse(this.native.config()) as Record<string, unknown>;
  }

  info(): CausalModelInfo {
    return this.native.info();
  }

  /** Frees the native model now (work already running finishes first). Idempotent. */
  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
  }
}
