// The seam between a training step and data parallelism, free of c10d types so
// the trainer can hold one whether or not this build has distributed support.
//
// A step over micro-batches on every rank calls, in this order:
//   T = sync.global_count(local_tokens)     // before any backward
//   for each micro-batch: (sum_loss_mb / T).backward(),
//       calling sync.prepare_for_backward() just before the *last* backward
//   sync.finish_backward()                  // grads now hold the sum over ranks
// Every rank then sees  grad = Σ_ranks Σ_tokens ∇ℓ / T : the gradient of the
// mean loss over the union of all ranks' tokens, whatever the per-rank token
// counts and however many micro-batches each rank accumulated. Clipping and
// the optimizer then run identically everywhere, so replicas stay equal.
#pragma once
#include <cstdint>
#include <vector>

namespace mentor_kd::dist {

class GradSync {
 public:
  virtual ~GradSync() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Σ over ranks of `local` (e.g. target tokens of this step).
  virtual int64_t global_count(int64_t local) = 0;
  // Element-wise Σ over ranks (loss sums for logging).
  virtual std::vector<double> sum(const std::vector<double>& local) = 0;
  // Arms the gradient hooks: during the next backward each bucket is
  // all-reduced as soon as all its gradients are final (overlapping backward).
  virtual void prepare_for_backward() = 0;
  // Reduces what the hooks did not, waits for every bucket and writes the sums
  // back into the parameters' .grad(). Throws (naming the missing rank) on a
  // failed or timed-out collective.
  virtual void finish_backward() = 0;
};

}  // namespace mentor_kd::dist
