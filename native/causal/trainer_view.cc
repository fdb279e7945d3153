// CausalLM's side of model::LanguageModel (model/language_model.h): one sequence, prompt +
// completion, scored at the completion positions only.
//
// Shapes: input_ids/attention_mask/labels [B, T]; after prepare_batch() labels[b, t] is the
// token position t predicts (HF's labels[b, t + 1]; -100 at t = T - 1), so a prompt of P tokens
// and a completion of C tokens give C scored rows (the last prompt token predicts the first
// completion token). head_input() keeps only those rows: [N, D] with N = the step's target
// tokens, so neither the fused loss nor the mentor spends work on prompt or padding rows.
#include <filesystem>
#include <stdexcept>

#include "causal/architecture.h"
#include "causal/model.h"

namespace mentor_kd::causal {
namespace fs = std::filesystem;

model::TokenBatch CausalLM::prepare_batch(const model::TokenBatch& in) const {
  if (in.decoder_input_ids.defined() || in.decoder_attention_mask.defined())
    throw std::invalid_argument(
        "decoderInputIds/decoderAttentionMask: a decoder-only model takes one sequence (inputIds = prompt + "
        "completion, labels on the completion)");
  CausalBatch given;
  given.input_ids = in.input_ids;
  given.attention_mask = in.attention_mask;
  given.labels = in.labels;
  given.position_ids = in.position_ids;
  CausalBatch b = prepare(given);
  model::TokenBatch out;
  out.input_ids = b.input_ids;
  out.attention_mask = b.attention_mask;
  if (b.labels.defined()) {
    const int64_t B = b.labels.size(0), T = b.labels.size(1);
    // HF LlamaForCausalLM: logits[:, :-1] against labels[:, 1:]; the last position predicts nothing.
    out.labels = at::cat({b.labels.narrow(1, 1, T - 1), at::full({B, 1}, -100, b.labels.options())}, 1);
  }
  // As HF's generate: the real tokens of a row sit at 0..n-1 whatever the padding side
  // (padding at 1; its rows are never scored and its keys are masked).
  const at::Tensor& m = b.attention_mask;
  out.position_ids = b.position_ids.defined() ? b.position_ids : (m.cumsum(1) - 1).masked_fill(m == 0, 1);
  return out;
}

namespace {
// Flat indices of the scored rows of a [B, T] label tensor.
at::Tensor scored_rows(const at::Tensor& labels) { return labels.reshape({-1}).ne(-100).nonzero().squeeze(1); }
}  // namespace

model::HeadInput CausalLM::head_input(const model::TokenBatch& p, bool /*train: no dropout in this family*/) {
  if (!p.labels.defined()) throw std::invalid_argument("labels is required");
  at::Tensor hidden = hidden_states(p.input_ids, p.attention_mask, p.position_ids);  // [B, T, D]
  const at::Tensor rows = scored_rows(p.labels);
  return {hidden.reshape({-1, config_.hidden_size}).index_select(0, rows),
          p.labels.reshape({-1}).index_select(0, rows)};
}

at::Tensor CausalLM::teacher_forced_logits(const model::TokenBatch& p) {
  at::Tensor hidden = hidden_states(p.input_ids, p.attention_mask, p.position_ids);
  at::Tensor rows = hidden.reshape({-1, config_.hidden_size}).index_select(0, scored_rows(p.labels));
  return at::linear(rows, lm_head_).to(at::kFloat);  // [N, V], float32 as HF's logits
}

std::string CausalLM::mentor_mismatch(const model::LanguageModel& other) const {
  if (!dynamic_cast<const CausalLM*>(&other))
    return std::string("the mentor is a ") + other.family() +
           " model but the student is a causal (decoder-only) model; teacher forcing needs one family";
  return "";
}

std::string CausalLM::checkpoint_mismatch(const std::string& dir) const {
  return architecture_mismatch(read_causal_config((fs::path(dir) / "config.json").string()), config_);
}

io::NamedTensors CausalLM::read_checkpoint_parameters(const std::string& dir) const {
  return CausalLM::load(dir, device_, dtype_)->parameters();
}

}  // namespace mentor_kd::causal
