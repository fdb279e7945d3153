// FlanT5 / T5 in libtorch, numerically following HF transformers'
// modeling_t5.py (v4.33) and keeping its parameter names, so a checkpoint
// moves between this and HF untouched.
//
// Parameters live in one ordered list under their HF names; the per-block
// structs below hold the same tensors (shared storage), so an optimizer that
// updates a parameter in place updates the model.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/safetensors.h"
#include "model/language_model.h"
#include "t5/config.h"
#include "t5/lora_config.h"

namespace mentor_kd::t5 {

struct AttentionWeights {
  at::Tensor q, k, v, o;
  at::Tensor relative_attention_bias;         // [num_buckets, heads]; block 0 of a stack only
  LoraLinear lora_q, lora_k, lora_v, lora_o;  // LoRA adapters (t5/lora.h); undefined unless adapted
};

struct FeedForwardWeights {
  at::Tensor wi, wi_0, wi_1, wo;                      // wi for relu; wi_0 (activated) and wi_1 (linear) when gated
  LoraLinear lora_wi, lora_wi_0, lora_wi_1, lora_wo;  // LoRA adapters (t5/lora.h); undefined unless adapted
};

struct EncoderBlockWeights {
  at::Tensor self_norm;
  AttentionWeights self_attn;
  at::Tensor ff_norm;
  FeedForwardWeights ff;
};

struct DecoderBlockWeights {
  at::Tensor self_norm;
  AttentionWeights self_attn;
  at::Tensor cross_norm;
  AttentionWeights cross_attn;
  at::Tensor ff_norm;
  FeedForwardWeights ff;
};

struct Seq2SeqBatch {
  at::Tensor input_ids;               // [B, S] int
  at::Tensor attention_mask;          // [B, S] (optional: all ones)
  at::Tensor labels;                  // [B, T] with -100 ignored (optional)
  at::Tensor decoder_input_ids;       // [B, T] (optional: shift_right(labels))
  at::Tensor decoder_attention_mask;  // [B, T] (optional)
};

struct ForwardOptions {
  bool train = false;       // dropout on
  bool need_logits = true;  // keep the [B, T, V] logits in the output
  bool need_encoder_hidden = false;
  int64_t activation_checkpointing = 0;  // t5/checkpoint.h: 0 none, 1 every block, k every k-th block
};

struct ForwardOutput {
  at::Tensor loss;            // 0-d float32, mean CE over non-ignored labels (if labels)
  at::Tensor logits;          // [B, T, V] model dtype
  at::Tensor encoder_hidden;  // [B, S, D] after the final RMSNorm
  at::Tensor decoder_hidden;  // [B, T, D] after the final RMSNorm (before the tied-head rescale)
  int64_t num_loss_tokens = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;  // HF's generation default; 0 disables
  double top_p = 1.0;
  int64_t num_return_sequences = 1;
  std::optional<uint64_t> seed;
};

// What load() and from_config() may build. Every size config.json implies is checked against the
// safetensors headers (load) before anything is allocated; the bytes the parameters need are
// checked against a memory budget: memory_budget_bytes when set, else (on CPU) the memory this
// process can still get (MemAvailable, the cgroup limit, RLIMIT_AS — the smallest).
struct LoadOptions {
  bool allow_non_finite = false;  // load NaN/Inf weights instead of refusing them (load only)
  std::optional<uint64_t> memory_budget_bytes;
};

// Bytes the parameters of `config` take in `dtype` (plus a per-tensor allowance for the tensor
// objects themselves), overflow-checked; throws naming `source` and the fields.
uint64_t estimate_parameter_bytes(const T5Config& config, at::ScalarType dtype, const std::string& source);
// The memory this process can still allocate, from /proc and cgroup files and RLIMIT_AS; nullopt if unknown.
std::optional<uint64_t> available_memory_bytes();

class T5Model : public model::LanguageModel {
 public:
  static std::shared_ptr<T5Model> load(const std::string& dir, at::Device device, at::ScalarType dtype,
                                       const LoadOptions& options = {});
  // Random initialisation as HF's T5PreTrainedModel._init_weights does.
  static std::shared_ptr<T5Model> from_config(const T5Config& config, at::Device device, at::ScalarType dtype,
                                              uint64_t seed, const LoadOptions& options = {});

  // Writes config.json, generation_config.json and model.safetensors (or shards
  // plus model.safetensors.index.json when larger than max_shard_bytes > 0).
  void save(const std::string& dir, int64_t max_shard_bytes) const override;

  const T5Config& config() const { return config_; }
  at::Device device() const override { return device_; }
  at::ScalarType dtype() const override { return dtype_; }
  const io::NamedTensors& parameters() const override { return params_; }
  at::Tensor parameter(const std::string& name) const;
  int64_t num_parameters() const;
  void zero_grad() override;
  // Copies `value` into the named parameter (same shape; converted to the model's dtype/device).
  void set_parameter(const std::string& name, const at::Tensor& value) override;

  ForwardOutput forward(const Seq2SeqBatch& batch, const ForwardOptions& options);
  at::Tensor encode(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool train);
  at::Tensor decode(const at::Tensor& decoder_input_ids, const at::Tensor& decoder_attention_mask,
                    const at::Tensor& encoder_hidden, const at::Tensor& attention_mask, bool train);
  // What multiplies lm_head: the decoder output, scaled by d_model^-0.5 when the head is tied.
  at::Tensor lm_head_input(const at::Tensor& decoder_hidden) const;
  const at::Tensor& lm_head_weight() const override { return lm_head_; }
  at::Tensor logits(const at::Tensor& decoder_hidden) const;
  // Greedy or sampled generation with a KV cache. Returns [B * n, 1 + steps]
  // int64: column 0 is decoder_start_token_id, finished rows padded with pad.
  at::Tensor generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const GenerateOptions& options);

  // For the generation engine (native/generate): the weights it reads, and a copy of this model in
  // another dtype (bf16 weights for generation while training keeps fp32).
  const std::vector<DecoderBlockWeights>& decoder_blocks() const { return decoder_; }
  const at::Tensor& shared_weight() const { return shared_; }
  const at::Tensor& decoder_final_norm() const { return decoder_final_norm_; }
  // With LoRA adapters, the copy has them merged in (W + B·A·scaling) and none attached.
  std::shared_ptr<T5Model> converted(at::ScalarType dtype) const;

  // LoRA (t5/lora.h, defined in lora.cc): adapters on the linear layers config.target_modules
  // names, base weights frozen (requires_grad off); the adapters go by the key names of PEFT's
  // adapter_model.safetensors ("base_model.model.<layer>.lora_A.weight").
  void add_lora(const LoraConfig& config, uint64_t seed);
  // Attaches the adapters of a PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
  void load_lora(const std::string& adapter_dir);
  // The adapter tensors of a PEFT adapter directory saved with this model's LoRA settings (checked;
  // set_parameter takes them by name: resume).
  io::NamedTensors read_lora(const std::string& adapter_dir) const;
  // Writes adapter_config.json + adapter_model.safetensors (and config.json, generation_config.json
  // when with_model_config: a training checkpoint's architecture check reads them).
  void save_lora(const std::string& dir, bool with_model_config = false) const;
  const std::optional<LoraConfig>& lora() const { return lora_; }
  const io::NamedTensors& lora_parameters() const { return lora_params_; }
  // What an optimizer updates: the adapters when attached, else every parameter.
  const io::NamedTensors& trainable_parameters() const override { return lora_ ? lora_params_ : params_; }

  // Validates and normalises a batch (dtypes, shapes, id ranges); throws naming the field.
  Seq2SeqBatch prepare(const Seq2SeqBatch& batch) const;
  at::Tensor shift_right(const at::Tensor& labels) const;

  // Serialises native calls on one model (JS may issue several at once).
  std::mutex& mutex() const override { return mutex_; }

  // The trainer's view (model/language_model.h; defined in model/t5_language_model.cc).
  const char* family() const override { return "t5"; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  bool supports_activation_checkpointing() const override { return true; }
  model::TokenBatch prepare_batch(const model::TokenBatch& batch) const override;
  model::HeadInput head_input(const model::TokenBatch& prepared, bool train) override;
  at::Tensor teacher_forced_logits(const model::TokenBatch& prepared) override;
  std::string mentor_mismatch(const model::LanguageModel& mentor) const override;
  std::string checkpoint_mismatch(const std::string& dir) const override;
  io::NamedTensors read_checkpoint_parameters(const std::string& dir) const override;

  // Generation settings from generation_config.json, kept for save().
  std::string generation_config_json;
  // Where the model was loaded from ("" when built from a config).
  std::string source_dir;

 private:
  T5Model(T5Config config, at::Device device, at::ScalarType dtype);
  void allocate();  // creates every parameter (uninitialised) and the block views
  void bind_blocks();
  void init_weights(uint64_t seed);
  at::Tensor& param(const std::string& name);
  void attach_lora(const LoraConfig& config, io::NamedTensors adapters);  // lora.cc
  void merge_lora_into(T5Model& target) const;                            // lora.cc

  at::Tensor position_bias(const at::Tensor& table, int64_t query_len, int64_t key_len, bool bidirectional,
                           int64_t query_offset) const;
  at::Tensor attention(const at::Tensor& hidden_q, const at::Tensor& key_value_states, const AttentionWeights& w,
                       const at::Tensor& bias, bool train) const;
  at::Tensor feed_forward(const at::Tensor& x, const FeedForwardWeights& w, bool train,
                          const at::Tensor& fused_wi = at::Tensor()) const;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  at::Tensor encoder_block(const EncoderBlockWeights& blk, const at::Tensor& x, const at::Tensor& bias,
                           bool train) const;
  at::Tensor decoder_block(const DecoderBlockWeights& blk, const at::Tensor& x, const at::Tensor& self_bias,
                           const at::Tensor& encoder_hidden, const at::Tensor& cross_bias, bool train) const;
  double mask_min() const;
  at::Tensor padding_bias(const at::Tensor& attention_mask) const;

  T5Config config_;
  at::Device device_;
  at::ScalarType dtype_;
  io::NamedTensors params_;
  std::unordered_map<std::string, size_t> index_;
  at::Tensor shared_, lm_head_, encoder_final_norm_, decoder_final_norm_;
  std::vector<EncoderBlockWeights> encoder_;
  std::vector<DecoderBlockWeights> decoder_;
  std::optional<LoraConfig> lora_;
  io::NamedTensors lora_params_;
  mutable std::mutex mutex_;
};

// The weights one block's forward reads (its relative_attention_bias is read outside: the stack
// computes the position bias once), for activation checkpointing.
std::vector<at::Tensor> block_parameters(const EncoderBlockWeights& blk);
std::vector<at::Tensor> block_parameters(const DecoderBlockWeights& blk);

// HF's T5Attention._relative_position_bucket, on int64 tensors.
at::Tensor relative_position_bucket(const at::Tensor& relative_position, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance);

// Tensor names a checkpoint of this config holds, in HF's naming.
std::vector<std::string> expected_parameter_names(const T5Config& config);

}  // namespace mentor_kd::t5
