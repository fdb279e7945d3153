// T5Model's side of model::LanguageModel: the encoder-decoder forward the trainer runs, the
// scored rows being every decoder position (labels -100 where ignored), as before the trainer
// became family-agnostic, so T5 losses and gradients are unchanged.
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "model/t5_architecture.h"
#include "t5/model.h"

namespace mentor_kd::t5 {

model::TokenBatch T5Model::prepare_batch(const model::TokenBatch& in) const {
  if (in.position_ids.defined())
    throw std::invalid_argument("positionIds: a T5 model takes no position ids (relative attention)");
  Seq2SeqBatch b = prepare(
      Seq2SeqBatch{in.input_ids, in.attention_mask, in.labels, in.decoder_input_ids, in.decoder_attention_mask});
  model::TokenBatch out;
  out.input_ids = b.input_ids;
  out.attention_mask = b.attention_mask;
  out.labels = b.labels;
  out.decoder_input_ids = b.decoder_input_ids;
  out.decoder_attention_mask = b.decoder_attention_mask;
  return out;
}

model::HeadInput T5Model::head_input(const model::TokenBatch& p, bool train) {
  at::Tensor enc = encode(p.input_ids, p.attention_mask, train);
  at::Tensor dec = decode(p.decoder_input_ids, p.decoder_attention_mask, enc, p.attention_mask, train);
  // [B, T, d] -> [B*T, d]: every decoder position, padding rows carry label -100.
  return {lm_head_input(dec).reshape({-1, config_.d_model}), p.labels.reshape({-1})};
}

at::Tensor T5Model::teacher_forced_logits(const model::TokenBatch& p) {
  at::Tensor enc = encode(p.input_ids, p.attention_mask, false);
  at::Tensor dec = decode(p.decoder_input_ids, p.decoder_attention_mask, enc, p.attention_mask, false);
  return logits(dec).reshape({-1, config_.vocab_size});
}

std::string T5Model::mentor_mismatch(const model::LanguageModel& other) const {
  const auto* mentor = dynamic_cast<const T5Model*>(&other);
  if (!mentor)
    return std::string("the mentor is a ") + other.family() +
           " model but the student is a T5 (encoder-decoder) model; teacher forcing needs one family";
  const T5Config& mc = mentor->config();
  if (mc.decoder_start_token_id != config_.decoder_start_token_id || mc.pad_token_id != config_.pad_token_id)
    return "the mentor's decoder_start_token_id/pad_token_id (" + std::to_string(mc.decoder_start_token_id) + "/" +
           std::to_string(mc.pad_token_id) + ") differ from the student's (" +
           std::to_string(config_.decoder_start_token_id) + "/" + std::to_string(config_.pad_token_id) +
           "); teacher forcing feeds both the same decoder inputs";
  return "";
}

std::string T5Model::checkpoint_mismatch(const std::string& dir) const {
  const T5Config ck = read_t5_config((std::filesystem::path(dir) / "config.json").string());
  return model::t5_architecture_mismatch(ck, config_);
}

io::NamedTensors T5Model::read_checkpoint_parameters(const std::string& dir) const {
  return T5Model::load(dir, device_, dtype_)->parameters();
}

}  // namespace mentor_kd::t5
