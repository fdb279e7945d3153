// Activation checkpointing of transformer blocks.
//
// A checkpointed block's forward runs without building a graph (nothing inside it is saved for
// backward: attention scores, softmax, projections, feed-forward hidden states); only its
// inputs are kept. In backward the block's forward runs again with grad on and its gradients
// are taken from that recomputed graph. The recomputation draws the same dropout masks (the
// seeds of t5/dropout.h are replayed from the stream position, or the default generator state,
// recorded in forward) and runs under the same autocast state, so the losses and gradients
// equal those of an uncheckpointed step bit for bit on CPU.
//
// Policy: `every` = 0 checkpoints nothing, 1 every block ("blocks"), k every k-th block
// (blocks 0, k, 2k, ...: less recomputation, less memory saved).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mentor_kd::t5 {

// "none" -> 0, "blocks" -> 1, "every-<k>" -> k (k >= 1); throws naming `field` otherwise.
int64_t parse_activation_checkpointing(const std::string& value, const std::string& field);
std::string activation_checkpointing_name(int64_t every);

// While alive on this thread, the model's encode/decode checkpoint blocks per `every` (when grad
// mode is on). Nestable (the innermost wins).
class ActivationCheckpointScope {
 public:
  explicit ActivationCheckpointScope(int64_t every);
  ~ActivationCheckpointScope();
  ActivationCheckpointScope(const ActivationCheckpointScope&) = delete;
  ActivationCheckpointScope& operator=(const ActivationCheckpointScope&) = delete;

 private:
  int64_t saved_;
};

// Whether block `index` of a stack is checkpointed now (scope, policy and grad mode).
bool checkpoint_block_now(size_t index);

// The forward of one block: its tensor inputs (the residual stream first, then biases and
// encoder states) -> its output. Must be deterministic given the dropout seeds it draws.
using BlockForward = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

// Runs `forward` checkpointed: inputs (undefined ones allowed) and the block's parameters
// (those not requiring grad are skipped) receive their gradients from the recomputation.
at::Tensor checkpointed_block(const BlockForward& forward, const std::vector<at::Tensor>& inputs,
                              const std::vector<at::Tensor>& parameters);

}  // namespace mentor_kd::t5
