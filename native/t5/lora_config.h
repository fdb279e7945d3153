// LoRA's settings and one adapted linear layer, under PEFT's names (LoraConfig: r, lora_alpha,
// lora_dropout, target_modules). What creates, merges and saves adapters is t5/lora.h; this
// header is what the model's block structs need.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mentor_kd::t5 {

struct LoraConfig {
  int64_t r = 0;
  double lora_alpha = 0;
  double lora_dropout = 0;
  std::vector<std::string> target_modules;  // a subset of q, k, v, o, wi_0, wi_1, wo (wi when not gated)

  // PEFT's scaling (use_rslora off): lora_alpha / r.
  double scaling() const { return lora_alpha / static_cast<double>(r); }
  bool targets(const std::string& module) const;
};

// y = x W^T + (dropout(x) A^T B^T)·scaling for one linear layer; A, B undefined when not adapted.
struct LoraLinear {
  at::Tensor A;  // lora_A.weight [r, in]
  at::Tensor B;  // lora_B.weight [out, r]
  double scaling = 0;
  double dropout = 0;
  bool defined() const { return A.defined(); }
};

// The adapter's term (dropout(x) A^T B^T)·scaling, in x's dtype: dropout (the counter-based one of
// t5/dropout.h, so checkpointing's replay and resume draw the same masks) on the adapter's input only.
at::Tensor lora_delta(const at::Tensor& x, const LoraLinear& lora, bool train);

}  // namespace mentor_kd::t5
