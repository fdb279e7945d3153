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
//
// Sharded optimizer state (train.sharding zero1|zero2, parallel/zero_optimizer.h):
// make_sharded_optimizer() returns the optimizer that replaces the trainer's
// AdamW; with zero2, finish_backward() leaves each rank only its slice of the
// summed gradient (held by the sharded optimizer's reducer, not in .grad()).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "train/adamw.h"

namespace mentor_kd::dist {

// ZeRO stages (DeepSpeed's names): none = DDP; zero1 = AdamW state sharded;
// zero2 = AdamW state and the reduced gradients sharded.
enum class Sharding { None, Zero1, Zero2 };
inline const char* sharding_name(Sharding s) {
  return s == Sharding::None ? "none" : s == Sharding::Zero1 ? "zero1" : "zero2";
}
inline Sharding sharding_from_name(const std::string& name) {
  if (name == "none") return Sharding::None;
  if (name == "zero1") return Sharding::Zero1;
  if (name == "zero2") return Sharding::Zero2;
  throw std::invalid_argument("train.sharding must be none, zero1 or zero2, got '" + name + "'");
}

// AdamW over this rank's contiguous slice of the flattened trainable parameters.
class ShardedOptimizer {
 public:
  virtual ~ShardedOptimizer() = default;
  virtual Sharding stage() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // L2 norm of the whole reduced gradient: Σ g² over this rank's slice, summed over ranks.
  // A collective: every rank calls it, in the same order.
  virtual double grad_norm() = 0;
  // AdamW on this rank's slice (grad_scale: the clipping coefficient), then every rank's
  // updated slice is all-gathered into every replica's parameters. A collective.
  virtual void step(double lr, double grad_scale) = 0;
  // This rank's state ("exp_avg.<name>", ... over its slice of each parameter) and the
  // metadata that places it (rank, world_size, slice bounds, total elements).
  virtual io::NamedTensors state_tensors() const = 0;
  virtual std::map<std::string, std::string> state_metadata() const = 0;
  // Restores a state_tensors() file of the same rank and world size; throws naming both
  // world sizes (or the mismatched tensor) before changing anything.
  virtual void load_state(const io::NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                          const std::string& source) = 0;
  // Bytes of the optimizer state tensors this rank holds (moments, masters, step counters).
  virtual int64_t state_bytes() const = 0;
};

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
  // Reduces what the hooks did not and waits for every bucket: the parameters'
  // .grad() then hold the sums (views of the reducer's buckets, grad_reducer.h).
  // Throws (naming the missing rank) on a failed or timed-out collective.
  virtual void finish_backward() = 0;
  // The optimizer for train.sharding zero1/zero2 over these (trainable) parameters.
  virtual std::shared_ptr<ShardedOptimizer> make_sharded_optimizer(const io::NamedTensors& params,
                                                                   const train::AdamWOptions& options, Sharding stage) {
    (void)params;
    (void)options;
    throw std::invalid_argument(std::string("train.sharding ") + sharding_name(stage) +
                                ": this data-parallel object cannot shard the optimizer");
  }
};

}  // namespace mentor_kd::dist
