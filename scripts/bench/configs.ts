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
