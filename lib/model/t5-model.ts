/**
 * FlanT5 / T5 running in libtorch. Numerically follows HF transformers' T5ForConditionalGeneration
 * and reads/writes HF model directories (config.json, model.safetensors or shards,
 * generation_config.json) under HF's parameter names.
 *
 * Heavy calls (load, forward, generate, save) run on a native worker thread and return Promises;
 * the event loop never blocks. Call dispose() when done; the garbage collector frees the native
 * model too, as a backstop.
 */
import { staticGenerateFromEnv } from '../runtime/env.js';
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { callNative, native } from '../native/loader.js';
import type { NativeT5Model } from '../native/binding.js';
import type { Tensor } from './tensor.js';
import type { ActivationCheckpointing } from '../config/train-settings.js';
import { generateStream } from './generate-stream.js';
import type { GenerateStreamOptions, GenerationRequest, GenerationResult } from './generate-stream.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type DType = 'float32' | 'bfloat16' | 'float16';

export interface LoadOptions {
  device?: Device;
  dtype?: DType;
  /**
   * Load weights holding NaN or Inf (refused by default, naming the tensor: they give NaN losses
   * and degenerate output). Used by load() only.
   */
  allowNonFinite?: boolean;
  /**
   * Most bytes the parameters may take; a config.json implying more is refused, naming the fields,
   * before anything is allocated. Default on CPU: the memory this process can still get.
   */
  memoryBudgetBytes?: number;
}

export interface FromConfigOptions extends LoadOptions {
  /** Seed for HF-style random initialisation (default 0). */
  seed?: number;
}

export interface Seq2SeqBatch {
  /** [B, S] token ids. */
  inputIds: Tensor;
  /** [B, S] 1 for real tokens, 0 for padding (default: all ones). */
  attentionMask?: Tensor;
  /** [B, T] target ids; -100 marks positions left out of the loss. */
  labels?: Tensor;
  /** [B, T] decoder inputs (default: HF's shift-right of labels). */
  decoderInputIds?: Tensor;
  decoderAttentionMask?: Tensor;
}

export interface ForwardOptions {
  /** Dropout on (training mode). Default false. */
  train?: boolean;
  /** Backpropagate the loss into the parameters' gradients (accumulating). Needs labels. */
  backward?: boolean;
  returnLogits?: boolean;
  returnEncoderHidden?: boolean;
  returnDecoderHidden?: boolean;
  /** With backward: recompute blocks in backward instead of keeping their activations (none, blocks, every-<k>). */
  activationCheckpointing?: ActivationCheckpointing;
}

export interface ForwardResult {
  /** Mean cross-entropy over non-ignored labels (present when labels were given). */
  loss?: number;
  numLossTokens?: number;
  logits?: Tensor<Float32Array>;
  encoderHidden?: Tensor<Float32Array>;
  decoderHidden?: Tensor<Float32Array>;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Sample instead of greedy decoding. */
  doSample?: boolean;
  temperature?: number;
  /** Keep the k most likely tokens when sampling (HF's default 50; 0 disables). */
  topK?: number;
  /** Nucleus sampling threshold (1 disables). */
  topP?: number;
  numReturnSequences?: number;
  /** Makes sampling reproducible. */
  seed?: number;
}

export interface SaveOptions {
  /** Split into shards with model.safetensors.index.json above this many bytes. */
  maxShardBytes?: number;
}

export interface ModelInfo {
  dtype: DType;
  device: string;
  numParameters: number;
  vocabSize: number;
  dModel: number;
  numLayers: number;
  numDecoderLayers: number;
  padTokenId: number;
  decoderStartTokenId: number;
  eosTokenIds: number[];
  tieWordEmbeddings: boolean;
  sourceDir: string;
}

export type { NativeT5Model } from '../native/binding.js';

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
const SIDE_FILES = /^(tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|spiece\.model|added_tokens\.json)$/;

export class T5Model {
  private constructor(private handle: NativeT5Model | null) {}

  /** Loads a HF model directory. */
  static async load(dir: string, options: LoadOptions = {}): Promise<T5Model> {
    checkCount('T5Model.load', options, 'memoryBudgetBytes', 0);
    const h = await callNative(() => native().model.T5Model.load(dir, options));
    return new T5Model(h);
  }

  /** A randomly initialised model from a HF config (object or JSON text). */
  static async fromConfig(config: object | string, options: FromConfigOptions = {}): Promise<T5Model> {
    const text = typeof config === 'string' ? config : JSON.stringify(config);
    checkCount('T5Model.fromConfig', options, 'memoryBudgetBytes', 0);
    checkCount('T5Model.fromConfig', options, 'seed', 0);
    const h = await callNative(() => native().model.T5Model.fromConfig(text, options));
    return new T5Model(h);
  }

  /**
   * Wraps a model handle that another native call made (a merged copy, lib/model/lora.ts): the
   * T5Model owns it from then on, and dispose() frees it.
   */
  static fromNative(handle: NativeT5Model): T5Model {
    return new T5Model(handle);
  }

  /** The native handle, for other native-backed classes (trainer). */
  get native(): NativeT5Model {
    if (!this.handle) throw new Error('T5Model: used after dispose()');
    return this.handle;
  }

  forward(batch: Seq2SeqBatch, options: ForwardOptions = {}): Promise<ForwardResult> {
    return callNative(() => this.native.forward(batch, options));
  }

  /** Returns [B * numReturnSequences, 1 + steps] ids; column 0 is the decoder start token. */
  generate(batch: Seq2SeqBatch, options: GenerateOptions = {}): Promise<Tensor<Int32Array>> {
    try {
      checkCount('generate', options, 'maxNewTokens', 1);
      checkCount('generate', options, 'topK', 0);
      checkCount('generate', options, 'numReturnSequences', 1);
      checkCount('generate', options, 'seed', 0);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!options.doSample) {
      const requests = this.engineRows(batch, options);
      if (requests) return this.generateGreedyOnEngine(requests);
    }
    return callNative(() => this.native.generate(batch, options));
  }

  /**
   * Generation on the continuous-batching engine (lib/model/generate-stream.ts): yields each
   * request's result as soon as it finishes. CPU only.
   */
  generateStream(requests: readonly GenerationRequest[], options: GenerateStreamOptions = {}): AsyncGenerator<GenerationResult> {
    return generateStream(this.native, requests, options);
  }

  /**
   * Greedy generate() on the engine: each row becomes a request (its padding stripped) and the
   * results are laid out as the static path's tensor. Only for a CPU model and right-padded rows
   * (test/generate-engine.test.ts checks the ids equal the static path's); null otherwise.
   */
  private engineRows(batch: Seq2SeqBatch, options: GenerateOptions): GenerationRequest[] | null {
    if (staticGenerateFromEnv()) return null;
    if ((options.numReturnSequences ?? 1) !== 1) return null;
    const info = this.info();
    if (info.device !== 'cpu' || info.dtype !== 'float32') return null; // identity checked in float32 only
    const ids = batch.inputIds;
    if (!ids || !Array.isArray(ids.shape) || ids.shape.length !== 2 || ids.data.length !== ids.shape[0]! * ids.shape[1]!) return null;
    if (!(ids.data instanceof Int32Array || ids.data instanceof BigInt64Array)) return null;
    const [B, S] = ids.shape as [number, number];
    if (B < 1 || S < 1) return null;
    const mask = batch.attentionMask;
    if (mask && (!Array.isArray(mask.shape) || mask.shape.length !== 2 || mask.shape[0] !== B || mask.shape[1] !== S || mask.data.length !== B * S))
      return null;
    const out: GenerationRequest[] = [];
    for (let b = 0; b < B; b++) {
      let len = S;
      if (mask) {
        len = 0;
        while (len < S && Number(mask.data[b * S + len]) === 1) len++;
        for (let j = len; j < S; j++) if (Number(mask.data[b * S + j]) !== 0) return null; // not right-padded
        if (len === 0) return null;
      }
      const row = new Int32Array(len);
      for (let j = 0; j < len; j++) {
        const id = Number(ids.data[b * S + j]);
        // Anything the static path would refuse goes there, for its error naming the field.
        if (!Number.isInteger(id) || id < 0 || id >= info.vocabSize) return null;
        row[j] = id;
      }
      out.push({ inputIds: row, maxNewTokens: options.maxNewTokens ?? 64 });
    }
    return out;
  }

  private async generateGreedyOnEngine(requests: GenerationRequest[]): Promise<Tensor<Int32Array>> {
    const rows: Int32Array[] = new Array(requests.length);
    for await (const r of this.generateStream(requests, { slots: Math.min(64, requests.length) })) {
      rows[r.index] = r.sequences[0]!;
    }
    const width = Math.max(...rows.map((r) => r.length));
    const pad = this.info().padTokenId;
    const data = new Int32Array(rows.length * width).fill(pad);
    rows.forEach((r, i) => data.set(r, i * width));
    return { data, shape: [rows.length, width], dtype: 'int64' };
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

  info(): ModelInfo {
    return this.native.info();
  }

  /** Frees the native model now (work already running finishes first). Idempotent. */
  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
  }
}
