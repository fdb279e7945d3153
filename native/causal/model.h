// Decoder-only causal LM (HF LlamaForCausalLM / Qwen2ForCausalLM) in libtorch, numerically
// following transformers v4.33's modeling_llama.py and keeping HF's parameter names, so a
// checkpoint moves between this and HF untouched.
//
// Parameters live in one ordered list under their HF names; the per-layer structs hold the same
// tensors (shared storage), so an optimizer updating a parameter in place updates the model.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "causal/attention.h"
#include "causal/config.h"
#include "causal/mlp.h"
#include "io/safetensors.h"
#include "model/language_model.h"
#include "t5/model.h"  // LoadOptions, GenerateOptions, available_memory_bytes: shared with T5

namespace mentor_kd::causal {

using LoadOptions = t5::LoadOptions;
using GenerateOptions = t5::GenerateOptions;

// Generation settings: T5's (max_new_tokens, do_sample, temperature, top_k, top_p,
// num_return_sequences, seed) plus per-prompt seeds. Sampling uses the generation engine's sampler
// (generate/sampler.h): sequence j of prompt b draws its token at step t (0 = the first new token)
// from counter_uniform(seed_b, j, t), so it depends on its own seed only, never on the batch. With
// `seeds` (one per prompt) seed_b = seeds[b]; with only `seed`, all prompts share it and prompt b's
// sequences are samples b * n + j (one request of B * n samples); with neither, a random seed.
struct CausalGenerateOptions : GenerateOptions {
  std::vector<uint64_t> seeds;
};

struct LayerWeights {
  at::Tensor input_norm;
  AttentionWeights attn;
  at::Tensor post_attention_norm;
  MlpWeights mlp;
};

struct CausalBatch {
  at::Tensor input_ids;       // [B, T] int
  at::Tensor attention_mask;  // [B, T] 0/1 (optional: all ones)
  at::Tensor labels;          // [B, T] with -100 ignored (optional); HF shifts: logit t predicts labels[t+1]
  at::Tensor position_ids;    // [B, T] (optional: 0..T-1, as HF's forward)
};

struct CausalForwardOptions {
  bool need_logits = true;  // keep the [B, T, V] logits in the output
};

struct CausalForwardOutput {
  at::Tensor loss;    // 0-d float32, mean CE over non-ignored shifted labels (if labels)
  at::Tensor logits;  // [B, T, V] float32 (HF casts logits to float32)
  at::Tensor hidden;  // [B, T, D] after the final RMSNorm, model dtype
  int64_t num_loss_tokens = 0;
};

class CausalLM : public model::LanguageModel {
 public:
  static std::shared_ptr<CausalLM> load(const std::string& dir, at::Device device, at::ScalarType dtype,
                                        const LoadOptions& options = {});
  // Random initialisation as HF's LlamaPreTrainedModel._init_weights: normal(0, initializer_range)
  // for linear and embedding weights (the pad row zeroed), zero biases, norms at one.
  static std::shared_ptr<CausalLM> from_config(const CausalConfig& config, at::Device device, at::ScalarType dtype,
                                               uint64_t seed, const LoadOptions& options = {});

  // Writes config.json, generation_config.json and model.safetensors (or shards plus
  // model.safetensors.index.json when larger than max_shard_bytes > 0).
  void save(const std::string& dir, int64_t max_shard_bytes) const override;

  const CausalConfig& config() const { return config_; }
  at::Device device() const override { return device_; }
  at::ScalarType dtype() const override { return dtype_; }
  const io::NamedTensors& parameters() const override { return params_; }
  at::Tensor parameter(const std::string& name) const;
  int64_t num_parameters() const;
  void zero_grad() override;
  void set_parameter(const std::string& name, const at::Tensor& value) override;

  CausalForwardOutput forward(const CausalBatch& batch, const CausalForwardOptions& options);
  const at::Tensor& lm_head_weight() const override { return lm_head_; }
  // Greedy or sampled generation with a KV cache from left-padded prompts: positions from the mask
  // as HF (cumsum(mask) - 1). Returns [B * n, P + steps] int64 (n = num_return_sequences, prompt b's
  // sequences in rows b * n .. b * n + n - 1): the prompts then the new tokens, rows that emitted EOS
  // padded afterwards with pad_token_id (the first EOS when there is none).
  at::Tensor generate(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                      const CausalGenerateOptions& options);

  // For the generation engine (generate/causal_decoder.h): the weights it reads, and one prompt's
  // prefill: ids [P] (unpadded, positions 0..P-1, causal) through the layers, filling `caches` (one
  // per layer, k/v [1, Hkv, >= P, d], length P) and returning the last position's logits [V] float32.
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const at::Tensor& embed_weight() const { return embed_; }
  const at::Tensor& final_norm_weight() const { return final_norm_; }
  at::Tensor prefill(const at::Tensor& ids, std::vector<KvCacheLayer>& caches);

  // Validates and normalises a batch (dtypes, shapes, id ranges); throws naming the field.
  CausalBatch prepare(const CausalBatch& batch) const;

  std::mutex& mutex() const override { return mutex_; }

  // The trainer's view (model/language_model.h; defined in causal/trainer_view.cc). Training
  // batches are prompt + completion in one sequence, left- or right-padded; labels are HF's
  // (completion ids, -100 on prompt and padding), shifted as LlamaForCausalLM's loss shifts them;
  // positions come from the mask (cumsum - 1, as HF's generate), so both paddings give the
  // unpadded numbers. The scored rows are the completion positions only. No dropout: config.json
  // must have attention_dropout 0 (causal/config.cc), so there is nothing to key for resume.
  const char* family() const override { return "causal"; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  bool supports_activation_checkpointing() const override { return false; }
  model::TokenBatch prepare_batch(const model::TokenBatch& batch) const override;
  model::HeadInput head_input(const model::TokenBatch& prepared, bool train) override;
  at::Tensor teacher_forced_logits(const model::TokenBatch& prepared) override;
  std::string mentor_mismatch(const model::LanguageModel& mentor) const override;
  std::string checkpoint_mismatch(const std::string& dir) const override;
  io::NamedTensors read_checkpoint_parameters(const std::string& dir) const override;

  // generation_config.json as read (or made from config.json), kept for save().
  std::string generation_config_json;
  std::string source_dir;  // "" when built from a config

 private:
  CausalLM(CausalConfig config, at::Device device, at::ScalarType dtype);
  void allocate();
  void bind_layers();
  void init_weights(uint64_t seed);
  at::Tensor& param(const std::string& name);
  double mask_min() const;
  // The final-norm hidden states [B, T, D] of a prepared batch, padding keys masked, causal.
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                           const at::Tensor& position_ids);
  // Runs the layers and the final norm; `caches` (one per layer) for incremental decoding.
  at::Tensor decoder(const at::Tensor& input_ids, const at::Tensor& position_ids, const at::Tensor& mask_bias,
                     int64_t key_len, std::vector<KvCacheLayer>* caches);

  CausalConfig config_;
  at::Device device_;
  at::ScalarType dtype_;
  io::NamedTensors params_;
  std::unordered_map<std::string, size_t> index_;
  at::Tensor embed_, lm_head_, final_norm_;
  std::vector<LayerWeights> layers_;
  mutable std::mutex mutex_;
};

}  // namespace mentor_kd::causal
