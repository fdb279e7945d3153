// Bucketed gradient all-reduce for data parallelism, overlapping backward.
//
// Buckets. Parameters are packed, in reverse registration order (roughly the
// order backward produces their gradients), into flat buffers of at most
// bucket_bytes each (one dtype/device per bucket; a larger tensor gets its own).
//
// Overlap. Each parameter's AccumulateGrad node gets a post hook. Once armed
// (prepare_for_backward), a hook packs its parameter's gradient into the
// bucket's slot and marks it ready; when every parameter of a bucket is ready
// the bucket's all-reduce is started asynchronously (Gloo/NCCL threads) while
// backward goes on. Buckets start strictly in index order, so every rank issues
// the same collectives in the same order whatever its autograd schedule.
// finish_backward() packs and starts the buckets the hooks did not (unused
// parameters, or no armed backward) and waits for all. Only the last backward
// of a step should be armed: earlier micro-batches just accumulate locally into
// ordinary .grad() tensors.
//
// Gradients as bucket views (PyTorch DDP's gradient_as_bucket_view, always on).
// Packing copies the gradient into its slot and makes the parameter's .grad()
// that slot (a contiguous view of the bucket), freeing the separate tensor; the
// all-reduce then sums in place, so after finish_backward the views hold the
// sums and nothing is copied back. A bucket's buffer is allocated when the
// first of its parameters is packed and the reducer drops it after the wait:
// from then on only the .grad() views keep it alive, and freeing the gradients
// (T5Model::zero_grad) frees it. Each rank so holds every gradient once. An
// in-place update of .grad() (zero_, +=, the optimizer's reads) keeps the view;
// assigning another tensor to .grad() detaches that parameter from the bucket.
// A buffer is never reused: each armed backward packs into fresh ones, so a
// gradient still viewing an earlier buffer (accumulation across calls without
// zero_grad) is copied like any other.
//
// Scaling. Gradients are multiplied by `scale` once their bucket is packed
// (pre-scaling keeps fp16/bf16 sums in range) and summed across ranks; see
// grad_sync.h for the token-count rule that makes the sum the gradient of the
// global mean loss. The arithmetic is that of copying out, scaling, summing and
// copying back: the gradients are the same bit for bit.
//
// A parameter without a gradient on this rank counts as zeros; after the
// reduce every parameter has a (possibly zero) gradient.
//
// Owner mode (zero2, set_owner_reduce): a bucket's parameters are consecutive
// in registration order, so the bucket is one contiguous range of the flat
// parameter vector (parallel/flat_layout.h) when packed in that order. Each
// rank's part of it is then reduced to that rank alone (Gloo reduce; libtorch
// 1.13's Gloo has no reduce_scatter), the parameters' .grad() are released as
// they are packed (no view is kept), and after finish_backward this rank holds
// only owned_grad(): its slice of the summed gradient. At most
// kOwnerBucketsInFlight buckets are reducing at once: before bucket k starts,
// bucket k − kOwnerBucketsInFlight is finished (its reduces waited for, this
// rank's part of the sum copied into owned_grad(), its buffer freed), as DDP
// waits inside its hooks too. A rank so holds those buckets plus the ones
// backward is filling (two when a bucket waits for a block's layer-norm
// gradient, which backward writes after the linears that follow it in bucket
// order), not every gradient; finish_backward finishes the rest.
// The waits are the same waits on the same reduces, only earlier, and buckets
// start in index order on every rank, so the collectives, the sums and the
// copies are those of finishing every bucket at the end. A failed wait inside
// a hook surfaces from finish_backward like any hook error.
#pragma once
#ifdef MENTOR_KD_WITH_C10D

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "parallel/flat_layout.h"
#include "parallel/grad_sync.h"
#include "parallel/group.h"
#include "t5/model.h"

namespace mentor_kd::dist {

struct BucketInfo {
  std::vector<std::string> names;
  int64_t numel = 0;
  int64_t bytes = 0;
  std::string dtype;
};

struct ReduceStats {
  int64_t buckets = 0;
  int64_t started_in_backward = 0;  // buckets whose all-reduce overlapped backward
  double wait_seconds = 0;          // time blocked in finish waiting for communication
};

class GradReducer : public std::enable_shared_from_this<GradReducer> {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 * 1024 * 1024;  // torch DDP's default
  // Owner mode: buckets reducing at once (the planner's "two buckets in flight", lib/plan/estimate.ts).
  static constexpr size_t kOwnerBucketsInFlight = 2;

  static std::shared_ptr<GradReducer> create(std::shared_ptr<Group> group, std::shared_ptr<t5::T5Model> model,
                                             int64_t bucket_bytes);
  ~GradReducer();

  // Call inside Group::run() and with the model locked.
  void prepare_for_backward(double scale);
  ReduceStats finish_backward();
  // Everything after backward (no overlap): prepare without hooks + finish.
  ReduceStats allreduce_now(double scale);
  // Rank root's parameters everywhere (coalesced per bucket).
  void broadcast_parameters(int root);

  // zero2 (see above); the layout must cover exactly parameter_names() in order. Between steps.
  void set_owner_reduce(const FlatLayout& layout);
  // This rank's slice of the summed gradient after finish_backward (fp32), in owner mode.
  const at::Tensor& owned_grad() const { return owned_grad_; }
  bool owner_mode() const { return owner_mode_; }
  const std::vector<std::string>& parameter_names() const { return names_; }

  const std::vector<BucketInfo>& buckets() const { return info_; }
  // Bytes of the bucket buffers the reducer itself holds now (0 between steps: the
  // reduced gradients are views the parameters hold).
  int64_t buffer_bytes();
  // The most bucket-buffer bytes the reducer held at once since the last prepare_for_backward.
  int64_t peak_buffer_bytes();
  // The most buckets started and not yet finished at once since then (owner mode: kOwnerBucketsInFlight).
  size_t peak_reducing();
  const std::shared_ptr<Group>& group() const { return group_; }
  const std::shared_ptr<t5::T5Model>& model() const { return model_; }

 private:
  GradReducer(std::shared_ptr<Group> group, std::shared_ptr<t5::T5Model> model, int64_t bucket_bytes);
  void install_hooks();
  void on_grad_ready(size_t param);
  void pack_locked(size_t param);
  void start_ready_locked();
  void start_locked(size_t bucket);
  // Owner mode: waits the bucket's reduces, copies this rank's part of the sum out, frees the buffer.
  void finish_owner_locked(size_t bucket);

  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    at::Tensor flat;  // [numel], allocated by the first pack, dropped after the reduce
    size_t ready = 0;
    bool started = false;
    c10::intrusive_ptr<c10d::Work> work;
    int64_t numel = 0;
    at::TensorOptions options;
    // Owner mode: the bucket's first element in the flat parameter vector, one reduce per owner.
    int64_t flat_begin = 0;
    std::vector<c10::intrusive_ptr<c10d::Work>> owner_works;
  };
  at::Tensor& flat_of(Bucket& b);
  void drop_buffer_locked(Bucket& b);  // the reducer's reference only (views may keep the storage)

  std::shared_ptr<Group> group_;
  std::shared_ptr<t5::T5Model> model_;
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  std::vector<size_t> bucket_of_;
  std::vector<size_t> slot_of_;  // the parameter's index within its bucket
  std::vector<Bucket> buckets_;
  std::vector<BucketInfo> info_;
  // Holding the accumulators keeps them (and our hooks) alive across steps.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  std::vector<bool> param_ready_;  // packed into its bucket in this reduce

  std::mutex mutex_;
  bool armed_ = false;
  double scale_ = 1.0;
  size_t next_start_ = 0;
  size_t next_finish_ = 0;  // owner mode: buckets [0, next_finish_) are copied out and freed
  int64_t held_bytes_ = 0, peak_held_bytes_ = 0;
  size_t peak_reducing_ = 0;
  int64_t started_in_backward_ = 0;
  std::exception_ptr hook_error_;

  bool owner_mode_ = false;
  FlatLayout layout_;
  at::Tensor owned_grad_;
};

// GradSync over a GradReducer, for a training step that owns its backward.
class ReducerGradSync : public GradSync {
 public:
  explicit ReducerGradSync(std::shared_ptr<GradReducer> reducer) : reducer_(std::move(reducer)) {}
  int rank() const override { return reducer_->group()->rank(); }
  int world_size() const override { return reducer_->group()->size(); }
  int64_t global_count(int64_t local) override;
  std::vector<double> sum(const std::vector<double>& local) override;
  void prepare_for_backward() override;
  void finish_backward() override;
  std::shared_ptr<ShardedOptimizer> make_sharded_optimizer(const io::NamedTensors& params,
                                                           const train::AdamWOptions& options, Sharding stage) override;
  const ReduceStats& last_stats() const { return stats_; }

 private:
  std::shared_ptr<GradReducer> reducer_;
  ReduceStats stats_;
};

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
