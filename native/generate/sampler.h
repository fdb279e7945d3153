// The next token of each row from its float32 logits, fused in one pass per row: greedy argmax, or
// HF's temperature -> top-k -> top-p warpers followed by one draw from counter_uniform(seed, sample, step).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mentor_kd::generate {

struct RowSampling {
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0, sample = 0, step = 0;
};

// logits: [n, V] float32 contiguous; writes n ids into out.
void sample_rows(const at::Tensor& logits, const std::vector<RowSampling>& rows, int64_t* out);

}  // namespace mentor_kd::generate
