/**
 * Memory planner: the bytes one rank needs to train a T5 with the native trainer, by part —
 * weights, gradients, AdamW state, activations and the runtime — derived from the shapes the
 * forward actually keeps for backward (native/t5/model.cc, counted per block below), so the
 * estimate follows the implementation rather than a rule of thumb. docs/memory.md compares it
 * with measured peaks.
 *
 * Saved for backward, per encoder block (B batch, S source tokens, D d_model, I = heads·d_kv,
 * F d_ff, H heads; element = the activation dtype unless noted):
 *   RMSNorm inputs x, x' and the normed h, h' feeding the linears       4·B·S·D
 *   the fused q|k|v projection (its views feed both attention matmuls)  3·B·S·I
 *   softmax output (fp32) and its dropped copy (dropout > 0)            (1 + [p>0])·B·H·S·S
 *   the attention context before `o`                                    B·S·I
 *   gated FF: wi_0|wi_1 output, act(wi_0), the dropped product          4·B·S·F   (relu: 2·B·S·F)
 * Per decoder block (T target tokens): the same for self-attention over T, plus cross-attention:
 *   its RMSNorm in/out 2·B·T·D, q B·T·I, k|v of the encoder states 2·B·S·I, probabilities
 *   (1 + [p>0])·B·H·T·S, context B·T·I.
 * Around the stacks: the encoder output (B·S·D, read by every cross-attention), the final
 * norms' inputs, and the fused loss's saved hidden state and its gradient (fp32).
 *
 * Activation checkpointing keeps only a checkpointed block's inputs (the residual stream, and
 * the position biases and encoder output shared by all blocks) and recomputes one block at a
 * time in backward, so its peak adds one block's activations back.
 * Transients: backward of the largest attention holds the gradient of its probabilities and
 * scores (2·B·H·L·L fp32) beside what is saved; the loss's logits chunk is 32 MiB.
 *
 * Full fine-tuning (one process, or each data-parallel rank): backward runs the decoder's blocks,
 * then the encoder's, each freeing what its forward saved as it writes its weights' gradients,
 * so the blocks' activations and the blocks' gradients are never all held at once. The peak is the largest of: every
 * block's activations (backward's start), the encoder's activations + the decoder's gradients
 * (between the stacks), every block's gradients (the end); the rest of the sum is `overlapBytes`
 * (docs/memory.md measures it: live bytes within a few percent of the plan).
 *
 * Data parallelism (native/parallel/grad_reducer.h) packs each gradient into its bucket's buffer
 * as backward writes it. With sharding none or zero1 the parameter's gradient then is a view of
 * that buffer (PyTorch DDP's gradient_as_bucket_view): the buckets are the gradients, no second
 * copy, freed with them after the update. With zero2 the buffers take over the released gradients,
 * but a bucket is freed once its reduce is done and this rank's part of the sum is copied out into
 * the slice it keeps: two buckets reduce at once (the two in flight) beside the ones backward fills,
 * so no full gradient is ever held and nothing trades against the activations. docs/memory.md
 * measures it on 2 Gloo ranks.
 */
import { parseActivationCheckpointing } from './checkpointing.js';
import { loraMismatch, loraParameterCount, type LoraSettings, type LoraTargetModule } from '../model/lora-settings.js';
import type { ActivationCheckpointing, Sharding } from '../config/train-settings.js';

/** The T5 config.json fields the planner reads (HF's names). */
export interface PlanModelConfig {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_decoder_layers?: number;
  num_heads: number;
  relative_attention_num_buckets?: number;
  feed_forward_proj?: string;
  tie_word_embeddings?: boolean;
  dropout_rate?: number;
}

export interface PlanInput {
  config: PlanModelConfig;
  /** Examples per micro-batch on each rank (per_device_train_batch_size). */
  batch: number;
  sourceLength: number;
  targetLength: number;
  /** Data-parallel ranks (each holds a full replica; per-rank bytes are reported). */
  ranks?: number;
  /** Weight dtype (float32 default; bfloat16 weights keep fp32 AdamW masters). */
  dtype?: 'float32' | 'bfloat16';
  /** bf16 autocast around the transformer: activations in bf16 (softmax stays fp32). */
  bf16?: boolean;
  activationCheckpointing?: ActivationCheckpointing;
  /**
   * The process besides tensors: Node, libtorch's code and thread pools. RSS is 0.24 GiB before any
   * model and 0.24-0.35 GiB above the live tensors after a training step, whatever the model
   * (docs/memory.md, runs where freed blocks go back to the kernel); 280 MiB by default. What
   * glibc's heaps keep of freed blocks comes on top and depends on the allocator's settings, not
   * on what is saved: docs/memory.md measures it.
   */
  runtimeBytes?: number;
  /** Gradient bucket size of data parallelism (two buckets' worth are in flight per rank). */
  bucketBytes?: number;
  /** train.sharding: zero1 divides the AdamW state by the ranks, zero2 the reduced gradients too. */
  sharding?: Sharding;
  /** LoRA (train.lora): the adapters (fp32) are the only trainable parameters; the base is frozen in its dtype. */
  lora?: LoraSettings;
}

export interface PlanEstimate {
  parameters: number;
  trainableParameters: number;
  weightBytes: number;
  /** The gradients the update reads: all of them, or with zero2 this rank's slice of the sum. */
  gradientBytes: number;
  /**
   * Data parallelism with zero2: the buckets backward is filling — two when one waits for a block's
   * layer-norm gradient; a tensor above bucketBytes, such as the embedding, is a bucket of its own —
   * beside the two reducing that communicationBytes counts (0 otherwise: with none or zero1 the
   * gradients are views of the buckets).
   */
  reducerBytes: number;
  optimizerBytes: number;
  activationBytes: number;
  runtimeBytes: number;
  communicationBytes: number;
  /** Counted in both activations and gradients but never held at once (backward frees a block's
   * activations as it writes its gradients; single-process full fine-tuning): subtracted from the total. */
  overlapBytes: number;
  totalBytes: number;
  /** Activation bytes per part, for the printout. */
  activationParts: { encoder: number; decoder: number; weightCopies: number; around: number; transient: number };
}

export const DEFAULT_RUNTIME_BYTES = 280 * 2 ** 20;
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

function isGated(c: PlanModelConfig): boolean {
  return (c.feed_forward_proj ?? 'relu').startsWith('gated-');
}

/** Parameters of the model, as native/t5 allocates them (HF's names and shapes). */
export function countParameters(c: PlanModelConfig): number {
  const D = c.d_model,
    I = c.num_heads * c.d_kv,
    F = c.d_ff,
    V = c.vocab_size;
  const Ld = c.num_decoder_layers ?? c.num_layers;
  const ff = (isGated(c) ? 3 : 2) * F * D;
  const attn = 4 * I * D;
  const buckets = c.relative_attention_num_buckets ?? 32;
  return (
    V * D * ((c.tie_word_embeddings ?? true) ? 1 : 2) + c.num_layers * (attn + ff + 2 * D) + Ld * (2 * attn + ff + 3 * D) + 2 * buckets * c.num_heads + 2 * D
  );
}

/** Positive integer check naming the field. */
function positive(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`plan: ${name} must be a positive integer, got ${v}`);
}

export function estimateMemory(input: PlanInput): PlanEstimate {
  const c = input.config;
  for (const k of ['vocab_size', 'd_model', 'd_kv', 'd_ff', 'num_layers', 'num_heads'] as const) positive(`config.${k}`, c[k]);
  positive('batch', input.batch);
  positive('sourceLength', input.sourceLength);
  positive('targetLength', input.targetLength);
  const ranks = input.ranks ?? 1;
  positive('ranks', ranks);
  const every = parseActivationCheckpointing(input.activationCheckpointing ?? 'none');
  const wBytes = input.dtype === 'bfloat16' ? 2 : 4;
  const aBytes = input.bf16 || input.dtype === 'bfloat16' ? 2 : 4;
  const B = input.batch,
    S = input.sourceLength,
    T = input.targetLength;
  const D = c.d_model,
    I = c.num_heads * c.d_kv,
    F = c.d_ff,
    H = c.num_heads;
  const Le = c.num_layers,
    Ld = c.num_decoder_layers ?? c.num_layers;
  const dropped = (c.dropout_rate ?? 0.1) > 0 ? 1 : 0;
  const ffElems = (isGated(c) ? 4 : 2) * F;

  const parameters = countParameters(c);
  // LoRA: the adapters (fp32, as native/t5/lora.h keeps them) are all that trains.
  const lora = input.lora;
  const loraProblem = lora ? loraMismatch(lora, c, 'lora') : '';
  if (loraProblem) throw new Error(`plan: ${loraProblem}`);
  const adapterParameters = lora ? loraParameterCount(lora, c) : 0;
  const trainable = lora ? adapterParameters : parameters;
  const weightBytes = parameters * wBytes + adapterParameters * 4;
  const tBytes = lora ? 4 : wBytes;
  // train.sharding (native/parallel/zero_optimizer.h): each rank keeps its 1/ranks slice of the AdamW
  // state (zero1, zero2) and of the reduced gradient (zero2: the last backward's gradients are
  // released bucket by bucket into the reducer's buffers, each freed once its reduce is done).
  const sharding = input.sharding ?? 'none';
  const zero2 = ranks > 1 && sharding === 'zero2';
  const gradientBytes = Math.ceil((trainable * tBytes) / (sharding === 'zero2' ? ranks : 1));
  // The reducer (native/parallel/grad_reducer.h) packs every gradient into its bucket buffers as
  // backward writes it: none/zero1 keep the gradients there as views (counted in gradientBytes);
  // zero2 frees bucket k − 2 before starting bucket k (buckets start in order), so it holds the two
  // reducing (communicationBytes) and those backward fills: a bucket can wait for its block's layer-norm
  // gradient, which backward writes after the linears that follow it in bucket order, while the next
  // one fills. Each is bucketBytes or the largest tensor (a bucket of its own); at most every gradient.
  const bucketBytes = input.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  const largestTensor = (lora ? 0 : Math.max(c.vocab_size, F, I) * D) * tBytes;
  const reducerBytes = zero2 ? Math.min(trainable * tBytes, Math.max(bucketBytes, largestTensor) + bucketBytes) : 0;
  // AdamW: two fp32 moments, plus fp32 master weights when the model itself is not fp32.
  const optimizerBytes = Math.ceil((trainable * (8 + (tBytes === 4 ? 0 : 4))) / (sharding === 'none' ? 1 : ranks));

  // Per block: what autograd keeps (see the header), in bytes.
  const probs = (q: number, k: number) => (1 + dropped) * B * H * q * k * 4;
  let encBlock = B * S * (4 * D + 4 * I + ffElems) * aBytes + probs(S, S);
  let decBlock = (B * T * (6 * D + 6 * I + ffElems) + 2 * B * S * I) * aBytes + probs(T, T) + probs(T, S);
  // The fused projections' weights (q|k|v, cross k|v, wi_0|wi_1), concatenated per call
  // (native/t5/model.cc), are kept by their linears for the input gradient, frozen or not: a
  // cost per block independent of batch and length, which dominates when they are small
  // (flan-t5-large: ~2 GiB).
  const gatedWeights = isGated(c) ? 2 * F * D : 0;
  const encWeights = (3 * I * D + gatedWeights) * aBytes,
    decWeights = (5 * I * D + gatedWeights) * aBytes;
  if (lora) {
    // A frozen linear keeps no input for a weight gradient: what only those fed is not saved
    // (the normed inputs of un-adapted q/k/v or wi, the context before an un-adapted o, the
    // dropped FF product before an un-adapted wo). Each adapter keeps x·Aᵀ [rows, r] and, with
    // lora_dropout, its dropped input [rows, in].
    const has = (...m: LoraTargetModule[]) => m.some((x) => lora.target_modules.includes(x));
    const inOf: Record<LoraTargetModule, number> = { q: D, k: D, v: D, o: I, wi: D, wi_0: D, wi_1: D, wo: F };
    const adapter = (rows: number, m: LoraTargetModule) => (lora.target_modules.includes(m) ? rows * (lora.r + (lora.lora_dropout > 0 ? inOf[m] : 0)) : 0);
    const attn = (rows: number, kvRows: number) => adapter(rows, 'q') + adapter(kvRows, 'k') + adapter(kvRows, 'v') + adapter(rows, 'o');
    const ff = (rows: number) => adapter(rows, 'wi') + adapter(rows, 'wi_0') + adapter(rows, 'wi_1') + adapter(rows, 'wo');
    const unsaved = (rows: number, qkv: boolean) => rows * ((qkv ? 0 : D) + (has('o') ? 0 : I) + (has('wi', 'wi_0', 'wi_1') ? 0 : D) + (has('wo') ? 0 : F));
    encBlock += B * (attn(S, S) + ff(S) - unsaved(S, has('q', 'k', 'v'))) * aBytes;
    decBlock += B * (attn(T, T) + attn(T, S) + ff(T) - unsaved(T, has('q', 'k', 'v')) - T * ((has('q') ? 0 : D) + (has('o') ? 0 : I))) * aBytes;
  }
  // What a checkpointed block keeps: its input (the residual stream).
  const encBoundary = B * S * D * aBytes,
    decBoundary = B * T * D * aBytes;
  const checkpointed = (L: number) => (every === 0 ? 0 : Math.floor((L - 1) / every) + 1);
  const encCk = checkpointed(Le),
    decCk = checkpointed(Ld);
  const encoder = (Le - encCk) * encBlock + encCk * encBoundary;
  const decoder = (Ld - decCk) * decBlock + decCk * decBoundary;
  const weightCopies = (Le - encCk) * encWeights + (Ld - decCk) * decWeights;
  // Around the stacks: encoder output + final norm input, decoder final norm in/out, the
  // loss's hidden state and its gradient (fp32); with checkpointing, the position biases the
  // blocks share are kept as their inputs ([B,H,S,S] for the encoder's, padding included).
  let around = 2 * B * S * D * aBytes + 2 * B * T * D * aBytes + 2 * B * T * D * 4;
  if (every > 0) around += B * H * S * S * aBytes + H * T * T * aBytes;
  // Backward's transient: the recomputed block (checkpointing) plus the gradients of the
  // largest attention's probabilities and scores, and one logits chunk of the loss.
  const biggestAttention = Math.max(B * H * S * S, B * H * T * S, B * H * T * T) * 4 * 2;
  // A recomputed block's saved tensors and weight copies come on top of everything kept, unless the
  // stack's last block (the first backward reaches) is not checkpointed: backward has then freed that
  // block's activations, the same size, before the first recomputation — only its weights' gradients
  // (about the weight copies' size) have taken their place.
  const recomputeOf = (L: number, ck: number, block: number, copies: number) => (ck === 0 ? 0 : (L - 1) % every === 0 ? block + copies : copies);
  const recompute = Math.max(recomputeOf(Le, encCk, encBlock, encWeights), recomputeOf(Ld, decCk, decBlock, decWeights));
  const transient = recompute + biggestAttention + 32 * 2 ** 20;
  const activationBytes = encoder + decoder + weightCopies + around + transient;

  // Backward trades each block's saved activations for its weights' gradients, decoder first
  // (see the header); with none or zero1 the gradients are the reducer's buckets, which trade the
  // same way (docs/memory.md, 2 ranks). zero2 holds no full gradient to trade (its buckets in flight
  // are counted beside every activation), nor does LoRA (its block gradients, the adapters, are negligible).
  let overlapBytes = 0;
  if (!lora && !zero2) {
    const ff = (isGated(c) ? 3 : 2) * F * D,
      attn = 4 * I * D;
    const encGrad = Le * (attn + ff + 2 * D) * tBytes,
      decGrad = Ld * (2 * attn + ff + 3 * D) * tBytes;
    const encAct = encoder + (Le - encCk) * encWeights,
      decAct = decoder + (Ld - decCk) * decWeights;
    overlapBytes = encAct + decAct + encGrad + decGrad - Math.max(encAct + decAct, encAct + decGrad, encGrad + decGrad);
  }
  const runtimeBytes = input.runtimeBytes ?? DEFAULT_RUNTIME_BYTES;
  const communicationBytes = ranks > 1 ? 2 * bucketBytes : 0;
  return {
    parameters,
    trainableParameters: trainable,
    weightBytes,
    gradientBytes,
    reducerBytes,
    optimizerBytes,
    activationBytes,
    runtimeBytes,
    communicationBytes,
    overlapBytes,
    totalBytes: weightBytes + gradientBytes + reducerBytes + optimizerBytes + activationBytes + runtimeBytes + communicationBytes - overlapBytes,
    activationParts: { encoder, decoder, weightCopies, around, transient },
  };
}
