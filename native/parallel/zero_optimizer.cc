#include "parallel/zero_optimizer.h"

#ifdef MENTOR_KD_WITH_C10D

#include <cmath>
#include <stdexcept>

namespace mentor_kd::dist {

std::shared_ptr<ZeroOptimizer> ZeroOptimizer::create(std::shared_ptr<GradReducer> reducer,
                                                     const io::NamedTensors& params, const train::AdamWOptions& options,
                                                     Sharding stage, int64_t gather_bytes) {
  if (stage == Sharding::None) throw std::invalid_argument("train.sharding: none is not a sharded optimizer");
  if (!reducer) throw std::invalid_argument("train.sharding: the data-parallel reducer is missing");
  if (gather_bytes < 1) throw std::invalid_argument("train.sharding: gather_bytes must be >= 1");
  return std::shared_ptr<ZeroOptimizer>(new ZeroOptimizer(std::move(reducer), params, options, stage, gather_bytes));
}

ZeroOptimizer::ZeroOptimizer(std::shared_ptr<GradReducer> reducer, const io::NamedTensors& params,
                             const train::AdamWOptions& options, Sharding stage, int64_t gather_bytes)
    : reducer_(std::move(reducer)), stage_(stage), rank_(reducer_->group()->rank()) {
  const std::string what = std::string("train.sharding ") + sharding_name(stage);
  std::vector<int64_t> numels;
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    if (!p.is_contiguous()) throw std::invalid_argument(what + ": parameter " + name + " is not contiguous");
    if (!params_.empty() && p.scalar_type() != params_[0].scalar_type())
      throw std::invalid_argument(what + ": parameters of one dtype are needed, " + name + " is " +
                                  c10::toString(p.scalar_type()) + " but " + names_[0] + " is " +
                                  c10::toString(params_[0].scalar_type()));
    params_.push_back(p);
    names_.push_back(name);
    numels.push_back(p.numel());
  }
  if (names_ != reducer_->parameter_names())
    throw std::invalid_argument(what + ": the trainer's and the data-parallel object's trainable parameters differ");
  layout_ = FlatLayout(numels, reducer_->group()->size());
  const int64_t my_begin = layout_.begin(rank_), my_end = layout_.end(rank_);
  io::NamedTensors views;
  for (const auto& piece : layout_.pieces(my_begin, my_end)) {
    slots_.push_back(Slot{piece.param, piece.local, piece.length, piece.flat});
    views.emplace_back(names_[piece.param],
                       params_[piece.param].detach().view(-1).narrow(0, piece.local, piece.length));
  }
  adamw_ = std::make_unique<train::AdamW>(views, options);
  gather_elems_ =
      std::max<int64_t>(1, gather_bytes / static_cast<int64_t>(params_.empty() ? 4 : params_[0].element_size()));
  if (stage_ == Sharding::Zero2) reducer_->set_owner_reduce(layout_);
}

std::vector<at::Tensor> ZeroOptimizer::slot_grads() const {
  std::vector<at::Tensor> out;
  out.reserve(slots_.size());
  for (const Slot& s : slots_) {
    if (stage_ == Sharding::Zero2) {
      out.push_back(reducer_->owned_grad().narrow(0, s.flat, s.length));
    } else {
      const at::Tensor& g = params_[s.param].grad();
      out.push_back(g.defined() ? g.reshape(-1).narrow(0, s.local, s.length) : at::Tensor());
    }
  }
  return out;
}

double ZeroOptimizer::grad_norm() {
  at::NoGradGuard no_grad;
  double local = 0;
  for (const at::Tensor& g : slot_grads()) {
    if (!g.defined()) continue;
    const double n = at::linalg_vector_norm(g, 2, c10::nullopt, false, at::kFloat).item<double>();
    local += n * n;
  }
  Group& g = *reducer_->group();
  Group::Turn turn(g, g.take_ticket());
  at::Tensor t = at::full({1}, local, at::TensorOptions().dtype(at::kDouble)).to(g.comm_device());
  g.run("gradient norm (sharded)", [&] { g.allreduce(t); });
  return std::sqrt(t.cpu().item<double>());
}

void ZeroOptimizer::step(double lr, double grad_scale) {
  adamw_->step_with_grads(slot_grads(), lr, grad_scale);
  gather_parameters();
}

void ZeroOptimizer::gather_parameters() {
  at::NoGradGuard no_grad;
  Group& g = *reducer_->group();
  Group::Turn turn(g, g.take_ticket());
  // Each owner broadcasts its updated slice in chunks, owners and chunks in the same order on
  // every rank. Broadcast rather than allgather: on Gloo over loopback (libtorch 1.13) an
  // allgather of two 23 MB slices took 4.1 s, the two broadcasts 0.9 s (docs/memory.md).
  g.run("parameter gather (sharded)", [&] {
    const auto options = params_[0].options().device(g.comm_device()).requires_grad(false);
    at::Tensor buffer = at::empty({std::min(gather_elems_, std::max<int64_t>(1, layout_.shard_size()))}, options);
    for (int q = 0; q < layout_.world_size(); ++q) {
      for (int64_t a = layout_.begin(q); a < layout_.end(q); a += gather_elems_) {
        const int64_t b = std::min(a + gather_elems_, layout_.end(q));
        at::Tensor chunk = buffer.narrow(0, 0, b - a);
        if (q == rank_) layout_.pack(params_, a, b, chunk);
        g.broadcast(chunk, q);
        if (q != rank_) layout_.unpack(params_, a, b, chunk);
      }
    }
  });
}

std::map<std::string, std::string> ZeroOptimizer::state_metadata() const {
  return {{"sharding", sharding_name(stage_)},
          {"rank", std::to_string(rank_)},
          {"world_size", std::to_string(layout_.world_size())},
          {"shard_begin", std::to_string(layout_.begin(rank_))},
          {"shard_end", std::to_string(layout_.end(rank_))},
          {"total_elements", std::to_string(layout_.total())}};
}

void ZeroOptimizer::load_state(const io::NamedTensors& tensors, const std::map<std::string, std::string>& meta,
                               const std::string& source) {
  auto field = [&](const char* key) -> std::string {
    auto it = meta.find(key);
    if (it == meta.end()) throw std::runtime_error(source + ": sharded optimizer state has no '" + key + "' metadata");
    return it->second;
  };
  const int saved_world = std::stoi(field("world_size"));
  if (saved_world != layout_.world_size())
    throw std::runtime_error(source + ": optimizer state is sharded over " + std::to_string(saved_world) +
                             " ranks but this run has " + std::to_string(layout_.world_size()) +
                             " (train.sharding cannot resume into another world size)");
  if (std::stoi(field("rank")) != rank_)
    throw std::runtime_error(source + ": holds rank " + field("rank") + "'s optimizer shard, this is rank " +
                             std::to_string(rank_));
  if (std::stoll(field("total_elements")) != layout_.total() ||
      std::stoll(field("shard_begin")) != layout_.begin(rank_) || std::stoll(field("shard_end")) != layout_.end(rank_))
    throw std::runtime_error(source + ": the optimizer shard covers elements [" + field("shard_begin") + ", " +
                             field("shard_end") + ") of " + field("total_elements") + ", this rank owns [" +
                             std::to_string(layout_.begin(rank_)) + ", " + std::to_string(layout_.end(rank_)) +
                             ") of " + std::to_string(layout_.total()) + " (other trainable parameters?)");
  adamw_->load_state(tensors, source);  // checks every tensor before changing anything
}

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
