// A minimal data-parallel training step on the T5Model API (cross-entropy
// only, plain SGD): what the trainer's step does with a GradSync, in the
// smallest form, so data parallelism can be tested and benchmarked on its own.
//
// Loss rule (exact for uneven token counts and any number of micro-batches):
//   T   = Σ_ranks Σ_micro-batches n_mb          (target tokens, all-reduced first)
//   each micro-batch backpropagates  mean_mb · n_mb / T  =  sum_mb / T
//   gradients are summed across ranks (no further division)
// so every rank ends with ∇ of the mean loss over the union of all tokens,
// exactly what one process would compute on the union in one batch.
#pragma once
#ifdef MENTOR_KD_WITH_C10D

#include <vector>

#include "parallel/grad_reducer.h"

namespace mentor_kd::dist {

struct DdpStepResult {
  double loss = 0;        // mean CE over the union of all ranks' tokens
  double local_loss = 0;  // mean CE over this rank's tokens
  int64_t local_tokens = 0;
  int64_t global_tokens = 0;
  ReduceStats reduce;
  double seconds = 0;
};

// Call with the group's turn held. zero_grad clears gradients first.
DdpStepResult forward_backward(GradReducer& reducer, const std::vector<t5::Seq2SeqBatch>& micro_batches, bool train,
                               bool zero_grad, bool overlap);

// p -= lr * grad for every parameter with a gradient, then clears gradients.
void sgd_step(t5::T5Model& model, double lr);

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
