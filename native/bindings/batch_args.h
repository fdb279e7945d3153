// A Seq2SeqBatch from its JS form {inputIds, attentionMask?, labels?,
// decoderInputIds?, decoderAttentionMask?} (model calls, train steps, soft-label writing).
#pragma once
#include <napi.h>

#include <string>

#include "t5/model.h"

namespace mentor_kd {

// `where` prefixes the tensor names in errors ("microBatches[2]" -> "microBatches[2].labels").
t5::Seq2SeqBatch batch_from_js(const Napi::Value& v, const std::string& where = "");

}  // namespace mentor_kd
