// The trainer's view of a language model, whatever its family (T5 encoder-decoder, Llama/Qwen2
// decoder-only): validate a batch, the lm_head's input at the scored positions plus the head
// weight (so the fused kd_loss_linear never materialises N x V student logits), teacher-forced
// logits at the same positions for a mentor, and the parameters, locking, device and
// checkpoint plumbing the optimizer and exact resume need.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "io/safetensors.h"

namespace mentor_kd::model {

// A training batch in either family's terms; -100 marks an ignored label.
struct TokenBatch {
  at::Tensor input_ids;       // [B, S] int
  at::Tensor attention_mask;  // [B, S] 0/1 (optional: all ones)
  // As given: encoder-decoder [B, T] targets; decoder-only [B, S], HF's unshifted labels
  // (input ids on completion positions). After prepare_batch(): what each scored position
  // predicts, in both families (decoder-only: shifted left by one, as HF's loss does).
  at::Tensor labels;
  at::Tensor decoder_input_ids;       // encoder-decoder only (optional: shift_right(labels))
  at::Tensor decoder_attention_mask;  // encoder-decoder only (optional)
  at::Tensor position_ids;            // decoder-only: set by prepare_batch() from the mask
};

// The lm_head's input at the rows the loss scores, and the label of each row.
struct HeadInput {
  at::Tensor hidden;  // [N, d]
  at::Tensor labels;  // [N] (-100: ignored)
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;

  virtual const char* family() const = 0;  // "t5" or "causal"
  virtual int64_t vocab_size() const = 0;
  virtual at::Device device() const = 0;
  virtual at::ScalarType dtype() const = 0;
  virtual const io::NamedTensors& parameters() const = 0;
  // What an optimizer updates (all parameters unless a model freezes some, e.g. under LoRA).
  virtual const io::NamedTensors& trainable_parameters() const { return parameters(); }
  virtual void zero_grad() = 0;
  virtual void set_parameter(const std::string& name, const at::Tensor& value) = 0;
  virtual const at::Tensor& lm_head_weight() const = 0;
  // Serialises native calls on one model.
  virtual std::mutex& mutex() const = 0;
  // Whether the trainer's activation checkpointing (t5/checkpoint.h) reaches this model's blocks.
  virtual bool supports_activation_checkpointing() const = 0;

  // Validates and normalises a training batch (shapes, id ranges), throwing naming the field;
  // the result's labels are per scored position (see TokenBatch).
  virtual TokenBatch prepare_batch(const TokenBatch& batch) const = 0;
  // The student's forward on a prepared batch: the head's input at the scored rows (in the
  // autocast dtype when autocast is on), with grad; `train` turns dropout on.
  virtual HeadInput head_input(const TokenBatch& prepared, bool train) = 0;
  // The mentor's teacher-forced logits on a prepared batch at the rows head_input() gives
  // (eval mode; call under no-grad): [N, V].
  virtual at::Tensor teacher_forced_logits(const TokenBatch& prepared) = 0;
  // Why `mentor` cannot be teacher-forced on this model's batches ("" when it can).
  virtual std::string mentor_mismatch(const LanguageModel& mentor) const = 0;

  // Writes the HF model directory (config.json, weights).
  virtual void save(const std::string& dir, int64_t max_shard_bytes) const = 0;
  // Why the HF directory `dir` cannot be loaded into this model ("" when it can), naming fields.
  virtual std::string checkpoint_mismatch(const std::string& dir) const = 0;
  // The parameters of the model saved in `dir`, on this model's device and dtype.
  virtual io::NamedTensors read_checkpoint_parameters(const std::string& dir) const = 0;
};

}  // namespace mentor_kd::model
