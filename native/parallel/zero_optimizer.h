// Sharded AdamW over a data-parallel group (ZeRO stages 1 and 2, train.sharding).
//
// The trainable parameters are one flat vector (parallel/flat_layout.h); rank r
// owns the contiguous slice [r·S, (r+1)·S). It keeps the AdamW moments (and fp32
// masters of a bf16 model) for that slice only, 1/W of DDP's optimizer state:
// an AdamW (train/adamw.h) over views of the slice's pieces of each parameter,
// so the update is DDP's arithmetic, element for element.
//
//   zero1: gradients all-reduced as in DDP (every rank has the full sum); each
//          rank updates its slice from its part of .grad().
//   zero2: the reducer reduces each bucket's parts to their owners only (owner
//          mode, parallel/grad_reducer.h); each rank updates its slice from the
//          reducer's owned_grad() and keeps no full gradient.
// Then every owner broadcasts its updated slice (chunks of `gather_bytes`), so
// every replica is identical again: an all-gather made of broadcasts, which
// Gloo runs faster here than its allgather.
//
// Clipping uses the global norm: Σ g² over each rank's slice, summed over ranks.
#pragma once
#ifdef MENTOR_KD_WITH_C10D

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "parallel/flat_layout.h"
#include "parallel/grad_reducer.h"
#include "parallel/grad_sync.h"
#include "train/adamw.h"

namespace mentor_kd::dist {

class ZeroOptimizer : public ShardedOptimizer {
 public:
  static constexpr int64_t kDefaultGatherBytes = 25 * 1024 * 1024;

  // params: the trainer's parameters (those without requires_grad are not trained); they must
  // be the reducer's trainable parameters, in the same order, contiguous and of one dtype.
  static std::shared_ptr<ZeroOptimizer> create(std::shared_ptr<GradReducer> reducer, const io::NamedTensors& params,
                                               const train::AdamWOptions& options, Sharding stage,
                                               int64_t gather_bytes = kDefaultGatherBytes);

  Sharding stage() const override { return stage_; }
  int rank() const override { return rank_; }
  int world_size() const override { return layout_.world_size(); }
  double grad_norm() override;
  void step(double lr, double grad_scale) override;
  io::NamedTensors state_tensors() const override { return adamw_->state_tensors(); }
  std::map<std::string, std::string> state_metadata() const override;
  void load_state(const io::NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                  const std::string& source) override;
  int64_t state_bytes() const override { return adamw_->state_bytes(); }
  const FlatLayout& layout() const { return layout_; }

 private:
  ZeroOptimizer(std::shared_ptr<GradReducer> reducer, const io::NamedTensors& params,
                const train::AdamWOptions& options, Sharding stage, int64_t gather_bytes);
  // This rank's gradient piece of each slot (views; zero1 from .grad(), zero2 from owned_grad()).
  std::vector<at::Tensor> slot_grads() const;
  void gather_parameters();

  struct Slot {
    size_t param;           // index into params_
    int64_t local, length;  // the piece of that parameter this rank owns (flattened elements)
    int64_t flat;           // its offset from this rank's slice begin
  };

  std::shared_ptr<GradReducer> reducer_;
  Sharding stage_;
  int rank_;
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  FlatLayout layout_;
  std::vector<Slot> slots_;
  std::unique_ptr<train::AdamW> adamw_;
  int64_t gather_elems_;
};

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
