/**
 * Streaming generation on the native engine (native/generate/engine.h): continuous batching over
 * `slots` decoder rows, one preparation per request shared by its samples (T5: the encoder pass and
 * cross-attention K/V; a causal LM: the prompt's prefill and its K/V), and counter-based sampling, so
 * a request's tokens depend only on its own seed (never on the slot count, the order of the requests,
 * or what shares the batch).
 *
 *   for await (const r of model.generateStream(requests, { slots: 64, dtype: 'bfloat16' })) ...
 *
 * yields each request's result as soon as it finishes (completion order, `index` says which request).
 * The engine steps on a native pool thread; the event loop never blocks. CPU models step on packed
 * float32 (or bf16) weights; CUDA T5 models replay the decode step from a CUDA graph
 * (native/generate/cuda_decode_step.h); causal models are served on the CPU.
 */
import { callNative, native } from '../native/loader.js';
import type { NativeGenerator } from '../native/binding.js';
import type { NativeCausalLM, NativeT5Model } from '../native/binding.js';

export interface GenerationRequest {
  /** The source token ids (T5) or the prompt's (causal LM), no padding. */
  inputIds: Int32Array | readonly number[];
  /**
   * Most new tokens per sample (default 64), or one limit per sample (length = samples); a sample
   * also ends at EOS.
   */
  maxNewTokens?: number | readonly number[];
  /** Sequences to return for this request (default 1; > 1 needs doSample). */
  samples?: number;
  /** Sample instead of greedy decoding (default false). */
  doSample?: boolean;
  /** Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens when sampling (HF's default 50; 0 disables). */
  topK?: number;
  /** Nucleus sampling threshold (default 1: off). */
  topP?: number;
  /** Sampling seed; sample j's token at step t is drawn from (seed, j, t). Default: random. */
  seed?: number;
}

export interface GenerationResult {
  /** The request's index in the list given to generateStream. */
  index: number;
  /**
   * One per sample: the generated ids (EOS included when reached), after the decoder start token for
   * T5 (a causal LM's are the new tokens only, without the prompt).
   */
  sequences: Int32Array[];
  /** Tokens generated over all samples. */
  newTokens: number;
}

export interface GenerateStreamOptions {
  /** Decoder rows stepped together (default 64). */
  slots?: number;
  /**
   * Weights the engine runs in: 'float32', or 'bfloat16' — a copy of the weights made for this
   * generation only (training keeps float32). Default: the model's dtype.
   */
  dtype?: 'float32' | 'bfloat16';
  /** Called after each chunk with the engine's counters (e.g. for a tokens/s progress line). */
  onProgress?: (stats: GenerationStats) => void;
}

export interface GenerationStats {
  slots: number;
  dtype: string;
  requestsDone: number;
  steps: number;
  rowSteps: number;
  newTokens: number;
  encoderPasses: number;
  encodeSeconds: number;
  decodeSeconds: number;
}

function checkInt(where: string, v: unknown, min: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new Error(`${where} must be an integer, got ${typeof v === 'number' ? v : JSON.stringify(v)}`);
  }
  if (v < min) throw new Error(`${where} must be >= ${min}, got ${v}`);
}

/** Runs `requests` on a fresh engine over `model` (a T5 model or a causal LM), yielding each result as it finishes. */
export async function* generateStream(
  model: NativeT5Model | NativeCausalLM,
  requests: readonly GenerationRequest[],
  options: GenerateStreamOptions = {},
): AsyncGenerator<GenerationResult> {
  checkInt('generateStream: options.slots', options.slots, 1);
  requests.forEach((r, i) => {
    if (r === null || typeof r !== 'object') throw new Error(`generateStream: requests[${i}] must be an object`);
    if (Array.isArray(r.maxNewTokens)) {
      if (r.maxNewTokens.length !== (r.samples ?? 1)) {
        throw new Error(`requests[${i}].maxNewTokens has ${r.maxNewTokens.length} entries for ${r.samples ?? 1} samples`);
      }
      r.maxNewTokens.forEach((m, j) => checkInt(`requests[${i}].maxNewTokens[${j}]`, m, 1));
    } else {
      checkInt(`requests[${i}].maxNewTokens`, r.maxNewTokens, 1);
    }
    checkInt(`requests[${i}].samples`, r.samples, 1);
    checkInt(`requests[${i}].topK`, r.topK, 0);
    checkInt(`requests[${i}].seed`, r.seed, 0);
  });
  const engineOptions: { slots?: number; dtype?: string } = {};
  if (options.slots !== undefined) engineOptions.slots = options.slots;
  if (options.dtype !== undefined) engineOptions.dtype = options.dtype;
  const gen: NativeGenerator = await callNative(() => native().model.Generator.create(model, engineOptions));
  try {
    gen.submit(requests.map((r, i) => ({ ...r, tag: i })));
    let left = requests.length;
    while (left > 0) {
      const done = await callNative(() => gen.run());
      if (done.length === 0) throw new Error('generateStream: the engine stopped with requests left');
      options.onProgress?.(gen.stats());
      for (const r of done) {
        left--;
        yield { index: r.tag, sequences: r.sequences, newTokens: r.newTokens };
      }
    }
  } finally {
    gen.dispose();
  }
}
