/** Tiny models and a toy seq2seq task for the training-engine tests. */
import { T5Model } from '../../lib/model/t5-model.js';
import { buildT5Tokenizer, type Tokenizer } from '../../lib/model/tokenizer.js';
import type { Seq2SeqExample } from '../../lib/train/data.js';
import type { TrainOptions } from '../../lib/train/index.js';
import { seededRandom } from '../../lib/tasks/random.js';

export const LETTERS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

/** "reverse: c a f b" -> "b f a c": exact-match chance for a random guesser is 8^-len. */
export function reversalTask(n: number, seed: number, minLen = 3, maxLen = 5): Seq2SeqExample[] {
  const random = seededRandom(seed);
  const out: Seq2SeqExample[] = [];
  for (let i = 0; i < n; i++) {
    const len = minLen + Math.floor(random() * (maxLen - minLen + 1));
    const xs = Array.from({ length: len }, () => LETTERS[Math.floor(random() * LETTERS.length)]!);
    out.push({ source: `reverse: ${xs.join(' ')}`, target: xs.slice().reverse().join(' ') });
  }
  return out;
}

export function toyTokenizer(): Tokenizer {
  const corpus: string[] = [];
  for (let r = 0; r < 3; r++) corpus.push(`reverse: ${LETTERS.join(' ')}`);
  return buildT5Tokenizer(corpus, { vocabSize: 64, minCount: 1 });
}

export interface TinyConfigOptions {
  vocabSize: number;
  dModel?: number;
  layers?: number;
  dropout?: number;
  tied?: boolean;
}

export function tinyConfig(o: TinyConfigOptions): Record<string, unknown> {
  const d = o.dModel ?? 32;
  return {
    model_type: 't5',
    vocab_size: o.vocabSize,
    d_model: d,
    d_kv: 8,
    d_ff: 2 * d,
    num_layers: o.layers ?? 2,
    num_decoder_layers: o.layers ?? 2,
    num_heads: 4,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 32,
    feed_forward_proj: 'gated-gelu',
    tie_word_embeddings: o.tied ?? false,
    dropout_rate: o.dropout ?? 0.1,
    initializer_factor: 1.0,
    decoder_start_token_id: 0,
    pad_token_id: 0,
    eos_token_id: 1,
  };
}

export function tinyModel(o: TinyConfigOptions & { seed?: number }): Promise<T5Model> {
  return T5Model.fromConfig(tinyConfig(o), { seed: o.seed ?? 1 });
}

/**
 * The batching of the reversal runs the resume tests compare across processes: 4 rows a
 * micro-batch, 2 micro-batches a step (gradient accumulation), bucketed, cosine schedule, seed 123, quiet.
 */
export const REVERSAL_RUN = {
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 2,
  bucketBatches: 2,
  lr_scheduler_type: 'cosine',
  seed: 123,
  progress: false,
  logger: () => {},
} satisfies Partial<TrainOptions>;

/** The mixed-distillation run of train-on-policy, in process and in ./on-policy-child.ts alike. */
export const ON_POLICY_RUN = {
  ...REVERSAL_RUN,
  max_steps: 8,
  learning_rate: 3e-3,
  maxTargetLength: 16,
  kd: { lambda: 0.5, tau: 2 },
} satisfies Partial<TrainOptions>;
