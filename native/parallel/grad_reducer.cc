#include "parallel/grad_reducer.h"
#include "parallel/zero_optimizer.h"

#ifdef MENTOR_KD_WITH_C10D

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace mentor_kd::dist {
namespace {

std::string dtype_str(at::ScalarType t) { return c10::toString(t); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::shared_ptr<GradReducer> GradReducer::create(std::shared_ptr<Group> group, std::shared_ptr<t5::T5Model> model,
                                                 int64_t bucket_bytes) {
  if (!group) throw std::invalid_argument("DataParallel: the process group is missing");
  if (!model) throw std::invalid_argument("DataParallel: the model is missing");
  if (bucket_bytes < 1) throw std::invalid_argument("bucketBytes must be >= 1, got " + std::to_string(bucket_bytes));
  std::shared_ptr<GradReducer> r(new GradReducer(std::move(group), std::move(model), bucket_bytes));
  r->install_hooks();
  return r;
}

GradReducer::GradReducer(std::shared_ptr<Group> group, std::shared_ptr<t5::T5Model> model, int64_t bucket_bytes)
    : group_(std::move(group)), model_(std::move(model)) {
  const at::Device dev = group_->comm_device();
  if (model_->device() != dev)
    throw std::invalid_argument("DataParallel: the model is on " + model_->device().str() + " but the " +
                                group_->backend() + " group communicates on " + dev.str() +
                                (group_->backend() == "gloo" ? " (use backend 'nccl' for CUDA models)"
                                                             : " (move the model to cuda:LOCAL_RANK)"));
  std::lock_guard<std::mutex> model_lock(model_->mutex());
  for (const auto& [name, p] : model_->parameters()) {
    if (!p.requires_grad()) continue;
    params_.push_back(p);
    names_.push_back(name);
  }
  if (params_.empty()) throw std::invalid_argument("DataParallel: the model has no trainable parameters");
  bucket_of_.assign(params_.size(), 0);
  slot_of_.assign(params_.size(), 0);
  param_ready_.assign(params_.size(), false);
  // Reverse order: the head and last decoder blocks get their gradients first.
  Bucket cur;
  BucketInfo cur_info;
  int64_t cur_bytes = 0;
  at::ScalarType cur_type = at::ScalarType::Undefined;
  auto close = [&] {
    if (cur.params.empty()) return;
    int64_t numel = 0;
    for (size_t i : cur.params) {
      cur.offsets.push_back(numel);
      numel += params_[i].numel();
    }
    cur.numel = numel;
    cur.options = params_[cur.params[0]].options().requires_grad(false);
    cur_info.numel = numel;
    cur_info.bytes = numel * static_cast<int64_t>(params_[cur.params[0]].element_size());
    cur_info.dtype = dtype_str(params_[cur.params[0]].scalar_type());
    for (size_t j = 0; j < cur.params.size(); ++j) {
      bucket_of_[cur.params[j]] = buckets_.size();
      slot_of_[cur.params[j]] = j;
    }
    buckets_.push_back(std::move(cur));
    info_.push_back(std::move(cur_info));
    cur = Bucket();
    cur_info = BucketInfo();
    cur_bytes = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (!cur.params.empty() && (p.scalar_type() != cur_type || cur_bytes + bytes > bucket_bytes)) close();
    cur_type = p.scalar_type();
    cur.params.push_back(k);
    cur_info.names.push_back(names_[k]);
    cur_bytes += bytes;
  }
  close();
}

GradReducer::~GradReducer() {
  // The hooks hold only a weak pointer, but remove them so they do not pile up on the model.
  for (size_t i = 0; i < accumulators_.size(); ++i) {
    try {
      accumulators_[i]->del_post_hook(hook_keys_[i]);
    } catch (...) {
    }
  }
}

void GradReducer::install_hooks() {
  std::weak_ptr<GradReducer> weak = weak_from_this();
  for (size_t i = 0; i < params_.size(); ++i) {
    std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(params_[i]);
    if (!acc)
      throw std::runtime_error("DataParallel: parameter " + names_[i] + " has no gradient accumulator (not a leaf?)");
    const uintptr_t key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (auto self = weak.lock()) self->on_grad_ready(i);
          return outputs;
        }));
    accumulators_.push_back(std::move(acc));
    hook_keys_.push_back(key);
  }
}

at::Tensor& GradReducer::flat_of(Bucket& b) {
  if (!b.flat.defined()) {
    b.flat = at::empty({b.numel}, b.options);
    held_bytes_ += static_cast<int64_t>(b.flat.nbytes());
    peak_held_bytes_ = std::max(peak_held_bytes_, held_bytes_);
  }
  return b.flat;
}

void GradReducer::drop_buffer_locked(Bucket& b) {
  if (!b.flat.defined()) return;
  held_bytes_ -= static_cast<int64_t>(b.flat.nbytes());
  b.flat = at::Tensor();
}

void GradReducer::set_owner_reduce(const FlatLayout& layout) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (layout.num_params() != params_.size() || layout.world_size() != group_->size())
    throw std::invalid_argument("train.sharding zero2: the shard layout has " + std::to_string(layout.num_params()) +
                                " parameters over " + std::to_string(layout.world_size()) + " ranks, the reducer " +
                                std::to_string(params_.size()) + " over " + std::to_string(group_->size()));
  for (size_t k = 0; k < params_.size(); ++k)
    if (layout.offset(k + 1) - layout.offset(k) != params_[k].numel())
      throw std::invalid_argument("train.sharding zero2: the shard layout does not match parameter " + names_[k]);
  layout_ = layout;
  owner_mode_ = true;
  // Pack every bucket in registration order: bucket = one contiguous flat range.
  for (Bucket& b : buckets_) {
    const size_t first = *std::min_element(b.params.begin(), b.params.end());
    b.flat_begin = layout_.offset(first);
    for (size_t j = 0; j < b.params.size(); ++j) b.offsets[j] = layout_.offset(b.params[j]) - b.flat_begin;
    drop_buffer_locked(b);
  }
  const int r = group_->rank();
  owned_grad_ = at::zeros({layout_.end(r) - layout_.begin(r)}, params_[0].options().dtype(at::kFloat));
}

void GradReducer::prepare_for_backward(double scale) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& b : buckets_) {
    b.ready = 0;
    b.started = false;
    b.work.reset();
    b.owner_works.clear();
    // Never reuse a buffer: the gradients of an earlier reduce may still be views into it.
    drop_buffer_locked(b);
  }
  std::fill(param_ready_.begin(), param_ready_.end(), false);
  next_start_ = 0;
  next_finish_ = 0;
  peak_held_bytes_ = held_bytes_;
  peak_reducing_ = 0;
  started_in_backward_ = 0;
  hook_error_ = nullptr;
  scale_ = scale;
  armed_ = true;
}

void GradReducer::on_grad_ready(size_t i) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || param_ready_[i]) return;
  try {
    pack_locked(i);
    ++buckets_[bucket_of_[i]].ready;
    start_ready_locked();
  } catch (...) {
    // Surfaces from finish_backward (inside Group::run, which names the failed rank);
    // throwing here would only abort backward with a less useful message.
    hook_error_ = std::current_exception();
    armed_ = false;
  }
}

void GradReducer::start_ready_locked() {
  while (next_start_ < buckets_.size() && buckets_[next_start_].ready == buckets_[next_start_].params.size()) {
    start_locked(next_start_++);
    ++started_in_backward_;
  }
}

void GradReducer::pack_locked(size_t i) {
  Bucket& b = buckets_[bucket_of_[i]];
  at::NoGradGuard no_grad;
  at::Tensor& p = params_[i];
  at::Tensor slot = flat_of(b).narrow(0, b.offsets[slot_of_[i]], p.numel()).view(p.sizes());
  at::Tensor& g = p.mutable_grad();
  if (g.defined())
    slot.copy_(g);
  else
    slot.zero_();
  // The bucket takes the gradient over (gradient_as_bucket_view): .grad() becomes the slot and the
  // separate tensor is freed. zero2 keeps no full gradient; its slice comes back from the reduce.
  if (owner_mode_)
    g.reset();
  else
    g = slot;
  param_ready_[i] = true;
}

void GradReducer::start_locked(size_t bi) {
  // Owner mode bounds the buffers alive: free bucket bi − kOwnerBucketsInFlight before starting bi
  // (waiting inside a backward hook, as DDP does; every rank finishes in the same index order).
  if (owner_mode_)
    while (next_finish_ + kOwnerBucketsInFlight <= bi) finish_owner_locked(next_finish_++);
  Bucket& b = buckets_[bi];
  // Parameters no armed hook packed (unused in the last backward, or no armed backward at all).
  for (size_t k : b.params)
    if (!param_ready_[k]) pack_locked(k);
  at::NoGradGuard no_grad;
  at::Tensor& flat = flat_of(b);
  if (scale_ != 1.0) flat.mul_(scale_);
  if (owner_mode_) {
    const int64_t lo = b.flat_begin, hi = b.flat_begin + b.numel;
    for (int q = 0; q < layout_.world_size(); ++q) {
      const int64_t a = std::max(lo, layout_.begin(q)), e = std::min(hi, layout_.end(q));
      if (a >= e) continue;
      at::Tensor part = flat.narrow(0, a - lo, e - a);
      b.owner_works.push_back(group_->reduce_async(part, q));
    }
  } else {
    b.work = group_->allreduce_async(flat);
  }
  b.started = true;
  peak_reducing_ = std::max(peak_reducing_, bi + 1 - next_finish_);
}

void GradReducer::finish_owner_locked(size_t bi) {
  Bucket& b = buckets_[bi];
  at::NoGradGuard no_grad;
  for (auto& w : b.owner_works) group_->wait(w, "gradient reduce (zero2)");
  b.owner_works.clear();
  const int me = group_->rank();
  const int64_t lo = b.flat_begin, hi = b.flat_begin + b.numel;
  const int64_t a = std::max(lo, layout_.begin(me)), e = std::min(hi, layout_.end(me));
  if (a < e) owned_grad_.narrow(0, a - layout_.begin(me), e - a).copy_(b.flat.narrow(0, a - lo, e - a));
  drop_buffer_locked(b);
}

ReduceStats GradReducer::finish_backward() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  armed_ = false;
  if (hook_error_) std::rethrow_exception(hook_error_);
  ReduceStats stats;
  stats.buckets = static_cast<int64_t>(buckets_.size());
  stats.started_in_backward = started_in_backward_;
  // Whatever the hooks did not start (unused parameters, no armed backward), in index order.
  while (next_start_ < buckets_.size()) start_locked(next_start_++);
  at::NoGradGuard no_grad;
  if (owner_mode_) {
    while (next_finish_ < buckets_.size()) finish_owner_locked(next_finish_++);
  } else {
    lock.unlock();  // the hooks are disarmed; wait without blocking buffer_bytes() callers
    for (Bucket& b : buckets_) {
      group_->wait(b.work, "gradient all-reduce");
      b.work.reset();
      // The parameters' .grad() are views of the sum; they alone keep the buffer alive.
      lock.lock();
      drop_buffer_locked(b);
      lock.unlock();
    }
  }
  stats.wait_seconds = seconds_since(t0);
  return stats;
}

ReduceStats GradReducer::allreduce_now(double scale) {
  prepare_for_backward(scale);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = false;  // no hooks: finish starts every bucket
  }
  return finish_backward();
}

void GradReducer::broadcast_parameters(int root) {
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    at::Tensor flat = at::empty({b.numel}, b.options);  // one bucket at a time
    for (size_t j = 0; j < b.params.size(); ++j) {
      const at::Tensor& p = params_[b.params[j]];
      flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes()).copy_(p);
    }
    group_->broadcast(flat, root);
    for (size_t j = 0; j < b.params.size(); ++j) {
      at::Tensor& p = params_[b.params[j]];
      p.copy_(flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes()));
    }
  }
}

int64_t GradReducer::buffer_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t bytes = 0;
  for (const Bucket& b : buckets_)
    if (b.flat.defined()) bytes += b.flat.nbytes();
  return bytes;
}

int64_t GradReducer::peak_buffer_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_held_bytes_;
}

size_t GradReducer::peak_reducing() {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_reducing_;
}

// ---------------------------------------------------------------------------

int64_t ReducerGradSync::global_count(int64_t local) {
  Group& g = *reducer_->group();
  Group::Turn turn(g, g.take_ticket());
  at::Tensor t = at::full({1}, local, at::TensorOptions().dtype(at::kLong).device(g.comm_device()));
  g.run("token count", [&] { g.allreduce(t); });
  return t.cpu().item<int64_t>();
}

std::vector<double> ReducerGradSync::sum(const std::vector<double>& local) {
  Group& g = *reducer_->group();
  Group::Turn turn(g, g.take_ticket());
  at::Tensor t = at::tensor(local, at::TensorOptions().dtype(at::kDouble)).to(g.comm_device());
  g.run("loss sums", [&] { g.allreduce(t); });
  t = t.cpu().contiguous();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

void ReducerGradSync::prepare_for_backward() {
  Group& g = *reducer_->group();
  Group::Turn turn(g, g.take_ticket());
  g.run("allreduceGradients (overlapped)", [&] { reducer_->prepare_for_backward(1.0); });
}

void ReducerGradSync::finish_backward() {
  Group& g = *reducer_->group();
  Group::Turn turn(g, g.take_ticket());
  g.run("allreduceGradients", [&] { stats_ = reducer_->finish_backward(); });
}

std::shared_ptr<ShardedOptimizer> ReducerGradSync::make_sharded_optimizer(const io::NamedTensors& params,
                                                                          const train::AdamWOptions& options,
                                                                          Sharding stage) {
  return ZeroOptimizer::create(reducer_, params, options, stage);
}

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
