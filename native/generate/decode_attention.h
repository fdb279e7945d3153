// One decode step's attention for n rows at once, each row with its own key length: self-attention over
// the row's cached keys 0..pos (with the relative-position bias looked up by distance, the same table for
// every layer), cross-attention over its request's encoder K/V (length = its source length, so no
// padding is ever computed); causal self-attention over the row's prompt and generated keys, with
// grouped-query heads (kv_group query heads per key/value head) and HF's q·k / √d. Scores and softmax
// in float32, as the models' attention does.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mentor_kd::generate {

struct AttendRows {
  int64_t heads = 0, d_kv = 0;
  // Query head h reads key/value head h / kv_group (1: one each, as T5; H / Hkv for GQA).
  int64_t kv_group = 1;
  // Scores are q·k / divisor (1 for T5, which has no scaling; √d for Llama, divided as HF divides).
  float divisor = 1.0f;
  // q: [n, heads * d_kv] rows (row stride q_stride elements).
  const void* q = nullptr;
  int64_t q_stride = 0;
  // Per row: base of its keys / values for head 0; key/value head g starts at + g * head_stride[row], key t at
  // + t * d_kv.
  std::vector<const void*> k, v;
  std::vector<int64_t> head_stride;
  std::vector<int64_t> lengths;  // keys per row
  // Optional [heads, bias_stride] float32 bias by distance: key t of a row with length len gets
  // bias[h * bias_stride + (len - 1 - t)].
  const float* bias = nullptr;
  int64_t bias_stride = 0;
};

// Writes [n, heads * d_kv] into out (contiguous, dtype float32 or bfloat16 as the inputs).
void attend_rows(const AttendRows& a, at::ScalarType dtype, void* out);

}  // namespace mentor_kd::generate
