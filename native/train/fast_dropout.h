// Faster dropout masks for CPU training.
//
// at::dropout draws its mask with bernoulli_(1-p). In libtorch builds without
// MKL (Debian's) that kernel is a serial mt19937 loop, ~14 ns per element:
// ~0.8 s of a flan-t5-small step. While a FastDropoutScope is alive on the
// current thread, bernoulli_(p) on a contiguous CPU float32 tensor with the
// default generator instead takes one 64-bit seed from the default CPU
// generator (so its state, saved in checkpoints, still decides every mask)
// and fills the tensor in parallel from a counter-based hash (splitmix64 of
// seed + index): the same masks for any thread count. Everything else — other
// threads, dtypes, explicit generators — goes to the stock kernel unchanged.
//
// The masks differ from PyTorch's (same distribution, different stream).
#pragma once

namespace mentor_kd::train {

class FastDropoutScope {
 public:
  explicit FastDropoutScope(bool enable);
  ~FastDropoutScope();
  FastDropoutScope(const FastDropoutScope&) = delete;
  FastDropoutScope& operator=(const FastDropoutScope&) = delete;

 private:
  bool prev_;
};

// Whether the override is registered (it is, at load, unless registration failed).
bool fast_dropout_available();

}  // namespace mentor_kd::train
