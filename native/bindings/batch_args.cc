#include "bindings/batch_args.h"

#include <stdexcept>

#include "napi/js_args.h"

namespace mentor_kd {

t5::Seq2SeqBatch batch_from_js(const Napi::Value& v, const std::string& where) {
  const std::string name = where.empty() ? "batch" : where;
  if (!v.IsObject()) throw std::invalid_argument(name + " must be an object {inputIds, attentionMask?, labels?, ...}");
  Napi::Object o = v.As<Napi::Object>();
  t5::Seq2SeqBatch b;
  b.input_ids = optional_tensor(o, "inputIds", where);
  b.attention_mask = optional_tensor(o, "attentionMask", where);
  b.labels = optional_tensor(o, "labels", where);
  b.decoder_input_ids = optional_tensor(o, "decoderInputIds", where);
  b.decoder_attention_mask = optional_tensor(o, "decoderAttentionMask", where);
  if (!b.input_ids.defined()) throw std::invalid_argument((where.empty() ? "" : where + ".") + "inputIds is required");
  return b;
}

}  // namespace mentor_kd
