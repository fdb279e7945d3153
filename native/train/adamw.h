// AdamW (Loshchilov & Hutter) with decoupled weight decay, numerically as
// torch.optim.AdamW (amsgrad off, per-parameter step counts):
//   p ← p·(1 − lr·wd)             (parameters that decay only)
//   m ← β1·m + (1−β1)·g
//   v ← β2·v + (1−β2)·g²
//   p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)
// with g the gradient times `grad_scale` (the clipping coefficient, folded in
// so clipping costs no extra pass over the gradients).
//
// Weight decay skips norm weights and anything named "*bias*" (HF Trainer's
// rule, which for T5 also exempts relative_attention_bias).
//
// State is fp32. Parameters that are not fp32 (a bf16 model) get an fp32
// master copy that the update is applied to, then rounded into the model.
// On CPU the whole update is one fused pass per tensor; elsewhere it is the
// same arithmetic in ATen ops.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mentor_kd::train {

// Set by the caller (TrainerOptions: adam_beta1, adam_beta2, adam_epsilon, weight_decay).
struct AdamWOptions {
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  double weight_decay = 0;

  void validate() const;  // throws naming the field
};

class AdamW {
 public:
  AdamW(const io::NamedTensors& params, AdamWOptions options);

  // One update of every parameter that has a gradient.
  void step(double lr, double grad_scale);
  // The same with the gradients given, one per parameter in construction order (undefined:
  // no update). The sharded optimizer's parameters are slices whose gradient lives elsewhere.
  void step_with_grads(const std::vector<at::Tensor>& grads, double lr, double grad_scale);

  const AdamWOptions& options() const { return options_; }
  static bool decays(const std::string& name);
  int64_t num_decayed() const;

  // "exp_avg.<name>", "exp_avg_sq.<name>", "step.<name>" (int64 [1]) and, for
  // non-fp32 parameters, "master.<name>".
  io::NamedTensors state_tensors() const;
  // Restores state_tensors() output; throws naming the missing/mismatched tensor.
  void load_state(const io::NamedTensors& tensors, const std::string& source);
  // After the model's parameters were overwritten (resume): refresh masters.
  void sync_masters_from_params();
  // Bytes of state_tensors() (moments, masters, step counters).
  int64_t state_bytes() const;

 private:
  struct Slot {
    std::string name;
    at::Tensor param, master, exp_avg, exp_avg_sq;
    int64_t step = 0;
    bool decay = true;
  };
  void update(Slot& s, const at::Tensor& grad, double lr, double grad_scale);
  void update_cpu(Slot& s, const at::Tensor& grad, double lr, double grad_scale);
  void update_generic(Slot& s, const at::Tensor& grad, double lr, double grad_scale);

  AdamWOptions options_;
  std::vector<Slot> slots_;
};

// Global L2 norm of all defined gradients, in fp32 (as clip_grad_norm_).
double global_grad_norm(const io::NamedTensors& params);
// torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0.
double clip_coefficient(double norm, double max_norm);

}  // namespace mentor_kd::train
