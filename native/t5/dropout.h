// Dropout with a counter-based mask, regenerated in backward instead of stored.
//
// Why: libtorch 1.13's CPU bernoulli_ (no MKL in Debian's build) draws one
// mt19937 number per element on one thread — ~12 ns/element, about 0.8 s of a
// flan-t5-small training step. Here the keep/drop decision for element i is a
// pure function hash(seed, i), so the mask is computed in parallel and
// vectorised, and backward recomputes it from the 64-bit seed: no mask tensor
// is kept for autograd (llm.c and PyTorch's CUDA fused dropout use the same
// trick with Philox). The seed is drawn from libtorch's default CPU generator,
// so at::manual_seed-style seeding and generator state save/restore (exact
// resume) cover it. Semantics are those of torch.nn.functional.dropout: kept
// elements are scaled by 1/(1-p). On CUDA it defers to at::dropout.
#pragma once
#include <ATen/ATen.h>

namespace mentor_kd::t5 {

at::Tensor fast_dropout(const at::Tensor& x, double p, bool train);

// The mask function itself (exposed for tests): keep(i) for a given seed.
bool dropout_keeps(uint64_t seed, int64_t index, double p);

// While one is alive on this thread, fast_dropout's seeds come from a counter
// keyed by `key` instead of the default generator: the masks of a forward are
// then a function of the key alone. The trainer keys each micro-batch by
// (one draw per step, its index among every rank's micro-batches), so data
// parallelism over W ranks x A micro-batches draws exactly the masks of one
// process accumulating W*A, and every rank's generator stays equal (exact
// multi-rank resume). Not nestable; forward only (backward reuses saved seeds).
class DropoutStreamScope {
 public:
  explicit DropoutStreamScope(uint64_t key);
  ~DropoutStreamScope();
  DropoutStreamScope(const DropoutStreamScope&) = delete;
  DropoutStreamScope& operator=(const DropoutStreamScope&) = delete;
};

// Where the keyed stream stands on this thread, and a scope that puts it back there: activation
// checkpointing (t5/checkpoint.h) replays a block's forward in backward and must draw the very
// seeds the first forward drew. Outside a DropoutStreamScope (inactive), seeds come from the
// default generator, whose state the replay saves and restores itself.
struct DropoutStreamPosition {
  bool active = false;
  uint64_t key = 0;
  uint64_t counter = 0;
};
DropoutStreamPosition dropout_stream_position();
class DropoutStreamReplay {
 public:
  explicit DropoutStreamReplay(const DropoutStreamPosition& at);
  ~DropoutStreamReplay();
  DropoutStreamReplay(const DropoutStreamReplay&) = delete;
  DropoutStreamReplay& operator=(const DropoutStreamReplay&) = delete;

 private:
  DropoutStreamPosition saved_;
};

// splitmix64 finaliser: a well-mixed 64-bit key from a step draw and an index.
uint64_t mix_dropout_key(uint64_t base, uint64_t index);

}  // namespace mentor_kd::t5
