/** Model configurations the benchmarks share (random init; the shapes of HF's checkpoints). */

/** google/flan-t5-small's config.json: 77.0 M parameters. */
export const FLAN_T5_SMALL = {
  model_type: 't5',
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 1024,
  num_layers: 8,
  num_decoder_layers: 8,
  num_heads: 6,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
  dropout_rate: 0.1,
  decoder_start_token_id: 0,
  pad_token_id: 0,
  eos_token_id: 1,
};

/** google/flan-t5-base's config.json: 247.6 M parameters. */
export const FLAN_T5_BASE = { ...FLAN_T5_SMALL, d_model: 768, d_ff: 2048, num_layers: 12, num_decoder_layers: 12, num_heads: 12, d_kv: 64 };

/** google/flan-t5-large's config.json: 783.2 M parameters. */
export const FLAN_T5_LARGE = { ...FLAN_T5_SMALL, d_model: 1024, d_ff: 2816, num_layers: 24, num_decoder_layers: 24, num_heads: 16, d_kv: 64 };

/** Qwen/Qwen2-0.5B's config.json shape (tied head): 494.0 M parameters. */
export const QWEN2_0_5B = {
  model_type: 'qwen2',
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  tie_word_embeddings: true,
  initializer_range: 0.02,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
};
