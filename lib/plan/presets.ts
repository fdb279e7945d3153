/** HF's FlanT5 configurations (config.json fields the planner reads), for `plan --preset`. */
import type { PlanModelConfig } from './estimate.js';

const FLAN: Omit<PlanModelConfig, 'd_model' | 'd_ff' | 'num_layers' | 'num_heads'> = {
  vocab_size: 32128,
  d_kv: 64,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
  dropout_rate: 0.1,
  relative_attention_num_buckets: 32,
};

export const MODEL_PRESETS = {
  'flan-t5-small': { ...FLAN, d_model: 512, d_ff: 1024, num_layers: 8, num_heads: 6 },
  'flan-t5-base': { ...FLAN, d_model: 768, d_ff: 2048, num_layers: 12, num_heads: 12 },
  'flan-t5-large': { ...FLAN, d_model: 1024, d_ff: 2816, num_layers: 24, num_heads: 16 },
  'flan-t5-xl': { ...FLAN, d_model: 2048, d_ff: 5120, num_layers: 24, num_heads: 32 },
} satisfies Record<string, PlanModelConfig>;
