// The Trainer's optimizer when train.sharding is zero1/zero2: the sharded AdamW
// of parallel/zero_optimizer.h replaces the replicated one, built when the
// process group arrives (set_grad_sync); its state is saved per rank as
// optimizer-rank<R>-of-<W>.safetensors beside the model. Resuming needs the
// same sharding and world size (the data order depends on the world size too);
// anything else is refused in one line naming both.
#include <filesystem>
#include <regex>
#include <stdexcept>

#include "train/trainer.h"

namespace mentor_kd::train {
namespace fs = std::filesystem;

namespace {

constexpr const char* kReplicatedFile = "optimizer.safetensors";

std::string shard_file(int rank, int world) {
  return "optimizer-rank" + std::to_string(rank) + "-of-" + std::to_string(world) + ".safetensors";
}

// What optimizer state a checkpoint directory holds, in words, or "" for none.
std::string saved_optimizer(const fs::path& root) {
  if (fs::exists(root / kReplicatedFile)) return "unsharded optimizer state (train.sharding none)";
  static const std::regex shard(R"(optimizer-rank(\d+)-of-(\d+)\.safetensors)");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, shard)) return "optimizer state sharded over " + m[2].str() + " ranks";
  }
  return "";
}

}  // namespace

void Trainer::set_grad_sync(std::shared_ptr<dist::GradSync> sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (options_.sharding != dist::Sharding::None) {
    std::lock_guard<std::mutex> model_lock(student_->mutex());
    sharded_ = sync
                   ? sync->make_sharded_optimizer(student_->trainable_parameters(), options_.adamw(), options_.sharding)
                   : nullptr;
  }
  grad_sync_ = std::move(sync);
}

void Trainer::require_optimizer() const {
  if (options_.sharding != dist::Sharding::None && !sharded_)
    throw std::invalid_argument(std::string("train.sharding ") + dist::sharding_name(options_.sharding) +
                                " needs data parallelism (a process group): there is nothing to shard over");
}

double Trainer::step_grad_norm() {
  return sharded_ ? sharded_->grad_norm() : global_grad_norm(student_->trainable_parameters());
}

void Trainer::optimizer_step(double lr, double grad_scale) {
  require_optimizer();
  if (sharded_)
    sharded_->step(lr, grad_scale);
  else
    optimizer_->step(lr, grad_scale);
}

int64_t Trainer::optimizer_state_bytes() const {
  // No lock (info() runs on the JS thread, beside a step): the state's tensors keep their sizes.
  if (sharded_) return sharded_->state_bytes();
  return optimizer_ ? optimizer_->state_bytes() : 0;
}

std::string Trainer::optimizer_file_name(const std::string& dir) const {
  if (options_.sharding == dist::Sharding::None) {
    if (!fs::exists(fs::path(dir) / kReplicatedFile)) {
      const std::string saved = saved_optimizer(dir);
      if (!saved.empty())
        throw std::runtime_error(dir + ": holds " + saved + " but train.sharding is none; resume with the same " +
                                 "train.sharding and world size");
    }
    return kReplicatedFile;
  }
  require_optimizer();
  const std::string mine = shard_file(sharded_->rank(), sharded_->world_size());
  if (!fs::exists(fs::path(dir) / mine)) {
    const std::string saved = saved_optimizer(dir);
    if (!saved.empty())
      throw std::runtime_error(dir + ": holds " + saved + " but this run has train.sharding " +
                               dist::sharding_name(options_.sharding) + " over " +
                               std::to_string(sharded_->world_size()) + " ranks (" + mine +
                               " is missing); resume with the same train.sharding and world size");
  }
  return mine;
}

void Trainer::write_optimizer_state(const std::string& dir, std::map<std::string, std::string> meta) const {
  if (!sharded_) {
    if (!optimizer_) require_optimizer();
    io::write_safetensors((fs::path(dir) / kReplicatedFile).string(), optimizer_->state_tensors(), meta);
    return;
  }
  for (const auto& [k, v] : sharded_->state_metadata()) meta[k] = v;
  io::write_safetensors((fs::path(dir) / shard_file(sharded_->rank(), sharded_->world_size())).string(),
                        sharded_->state_tensors(), meta);
}

void Trainer::save_optimizer_shard(const std::string& dir) {
  std::lock_guard<std::mutex> self(mutex_);
  if (!sharded_) {
    require_optimizer();
    throw std::invalid_argument("saveOptimizerShard: train.sharding is none (the optimizer is not sharded)");
  }
  fs::create_directories(dir);
  write_optimizer_state(dir, {{"format", "mentor-kd-optimizer"},
                              {"global_step", std::to_string(global_step_)},
                              {"optimizer", "adamw"},
                              {"schedule", schedule_kind_name(schedule_.kind)}});
}

void Trainer::load_optimizer_state(const io::NamedTensors& tensors, const std::map<std::string, std::string>& meta,
                                   const std::string& source) {
  if (sharded_)
    sharded_->load_state(tensors, meta, source);
  else
    optimizer_->load_state(tensors, source);
}

}  // namespace mentor_kd::train
