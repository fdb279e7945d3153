#include "train/trainer.h"

#include "runtime/heap.h"
#include "runtime/settings.h"
#include "t5/checkpoint.h"
#include "t5/dropout.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace mentor_kd::train {
namespace fs = std::filesystem;

namespace {

constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kRngFile = "rng_state.safetensors";

// libtorch's autocast state, per device type: torch 2.4 replaced the per-backend calls
// (set_cpu_enabled, set_autocast_gpu_dtype, ...) by ones taking the device type.
namespace autocast_state {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool enabled(at::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void set_enabled(at::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType dtype(at::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void set_dtype(at::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }
#else
bool enabled(at::DeviceType t) { return t == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled(); }
void set_enabled(at::DeviceType t, bool on) {
  t == at::kCPU ? at::autocast::set_cpu_enabled(on) : at::autocast::set_enabled(on);
}
at::ScalarType dtype(at::DeviceType t) {
  return t == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_dtype(at::DeviceType t, at::ScalarType d) {
  t == at::kCPU ? at::autocast::set_autocast_cpu_dtype(d) : at::autocast::set_autocast_gpu_dtype(d);
}
#endif
}  // namespace autocast_state

// bf16 autocast for the device's backend while in scope (nothing when !enable).
class AutocastScope {
 public:
  AutocastScope(const at::Device& device, bool enable) : on_(enable), type_(device.is_cpu() ? at::kCPU : at::kCUDA) {
    if (!on_) return;
    prev_enabled_ = autocast_state::enabled(type_);
    prev_dtype_ = autocast_state::dtype(type_);
    autocast_state::set_dtype(type_, at::kBFloat16);
    autocast_state::set_enabled(type_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    autocast_state::set_enabled(type_, prev_enabled_);
    autocast_state::set_dtype(type_, prev_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  at::DeviceType type_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// Locks the student and (if any) the mentor together, deadlock-free.
class ModelLocks {
 public:
  ModelLocks(const model::LanguageModel& student, const model::LanguageModel* mentor)
      : a_(student.mutex(), std::defer_lock), b_() {
    if (mentor) {
      b_ = std::unique_lock<std::mutex>(mentor->mutex(), std::defer_lock);
      std::lock(a_, b_);
    } else {
      a_.lock();
    }
  }

 private:
  std::unique_lock<std::mutex> a_, b_;
};

// The student produced NaN/Inf: the step is reported as not finite, not as an error.
struct NonFiniteStudent : std::runtime_error {
  NonFiniteStudent() : std::runtime_error("student activations are not finite") {}
};

// The student when it is a T5 model with LoRA adapters attached (only they are trained and saved).
template <typename Model>
const t5::T5Model* lora_student(const Model& m) {
  const auto* t5 = dynamic_cast<const t5::T5Model*>(&m);
  return t5 && t5->lora() ? t5 : nullptr;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void TrainerOptions::validate() const {
  schedule().validate();
  adamw().validate();
  if (!std::isfinite(max_grad_norm))
    throw std::invalid_argument("trainer: max_grad_norm must be finite (<= 0 disables clipping)");
  if (!(std::isfinite(lambda_) && lambda_ >= 0 && lambda_ <= 1))
    throw std::invalid_argument("trainer: lambda must be in [0, 1], got " + std::to_string(lambda_));
  if (!(std::isfinite(tau) && tau > 0)) throw std::invalid_argument("trainer: tau must be > 0");
  if (divergence == kd::Divergence::Unset) throw std::invalid_argument("trainer: divergence must be set");
  if (divergence == kd::Divergence::Jsd && !(beta >= 0 && beta <= 1))
    throw std::invalid_argument("trainer: beta must be in [0, 1], got " + std::to_string(beta));
  if ((divergence == kd::Divergence::SkewKl || divergence == kd::Divergence::SkewReverseKl) &&
      !(alpha >= 0 && alpha < 1))
    throw std::invalid_argument("trainer: alpha must be in [0, 1), got " + std::to_string(alpha));
  if (loss_chunk_rows < 0) throw std::invalid_argument("trainer: loss_chunk_rows must be >= 0");
  if (activation_checkpointing < 0) throw std::invalid_argument("trainer: activation_checkpointing must be >= 0");
}

// ---------------------------------------------------------------------------
// RNG state

void seed_rng(uint64_t seed) {
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  if (at::hasCUDA()) {
    for (int64_t i = 0; i < at::detail::getCUDAHooks().getNumGPUs(); ++i) {
      at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
  }
}

io::NamedTensors rng_state() {
  io::NamedTensors out;
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    out.emplace_back("cpu", gen.get_state().clone());
  }
  if (at::hasCUDA()) {
    for (int64_t i = 0; i < at::detail::getCUDAHooks().getNumGPUs(); ++i) {
      at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      out.emplace_back("cuda:" + std::to_string(i), gen.get_state().clone());
    }
  }
  return out;
}

void set_rng_state(const io::NamedTensors& state, const std::string& source) {
  bool cpu_found = false;
  for (const auto& [name, t] : state) {
    if (t.scalar_type() != at::kByte || t.dim() != 1)
      throw std::runtime_error(source + ": RNG state '" + name + "' must be a 1-D U8 tensor");
    if (name == "cpu") {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(t.contiguous().clone());
      cpu_found = true;
    } else if (name.rfind("cuda:", 0) == 0) {
      const int64_t idx = std::stoll(name.substr(5));
      if (!at::hasCUDA() || idx >= at::detail::getCUDAHooks().getNumGPUs()) continue;  // resumed on another machine
      at::Generator gen =
          at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(idx)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(t.contiguous().clone());
    }
  }
  if (!cpu_found) throw std::runtime_error(source + ": no 'cpu' RNG state");
}

uint64_t draw_step_key() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

// ---------------------------------------------------------------------------
// Trainer

Trainer::Trainer(std::shared_ptr<model::LanguageModel> student, std::shared_ptr<model::LanguageModel> mentor,
                 TrainerOptions options)
    : student_(std::move(student)), mentor_(std::move(mentor)), options_(std::move(options)) {
  if (!student_) throw std::invalid_argument("trainer: the student model is missing");
  options_.validate();
  schedule_ = options_.schedule();
  if (mentor_) {
    if (mentor_.get() == student_.get())
      throw std::invalid_argument("trainer: the mentor must be a different model from the student");
    if (std::string(mentor_->family()) != student_->family())
      throw std::invalid_argument("trainer: " + student_->mentor_mismatch(*mentor_));
    if (mentor_->vocab_size() != student_->vocab_size())
      throw std::invalid_argument("trainer: the mentor has vocab_size " + std::to_string(mentor_->vocab_size()) +
                                  " but the student has " + std::to_string(student_->vocab_size()) +
                                  " (soft labels need one shared vocabulary)");
    if (const std::string why = student_->mentor_mismatch(*mentor_); !why.empty())
      throw std::invalid_argument("trainer: " + why);
    if (mentor_->device() != student_->device())
      throw std::invalid_argument("trainer: the mentor is on " + mentor_->device().str() + " but the student is on " +
                                  student_->device().str());
  }
  if (options_.activation_checkpointing > 0 && !student_->supports_activation_checkpointing())
    throw std::invalid_argument(std::string("trainer: activation checkpointing is not implemented for ") +
                                student_->family() + " students; set activationCheckpointing to none");
  if (student_->device().is_cuda()) {
    // TF32 matmuls, as torch.backends.cuda.matmul.allow_tf32 = True.
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  std::lock_guard<std::mutex> lock(student_->mutex());
  // A sharded optimizer is built by set_grad_sync, over the process group (trainer_sharding.cc).
  if (options_.sharding == dist::Sharding::None)
    optimizer_ = std::make_unique<AdamW>(student_->trainable_parameters(), options_.adamw());
  if (options_.seed) seed_rng(*options_.seed);
}

std::vector<Trainer::Prepared> Trainer::prepare(const std::vector<MicroBatch>& mbs) const {
  if (mbs.empty()) throw std::invalid_argument("train step: no micro-batches");
  std::vector<Prepared> out;
  const int64_t V = student_->vocab_size();
  for (size_t i = 0; i < mbs.size(); ++i) {
    const std::string where = "microBatches[" + std::to_string(i) + "]";
    if (!mbs[i].batch.labels.defined()) throw std::invalid_argument(where + ".labels is required");
    Prepared p;
    try {
      p.batch = student_->prepare_batch(mbs[i].batch);
    } catch (const std::exception& e) {
      throw std::invalid_argument(where + ": " + e.what());
    }
    p.tokens = p.batch.labels.ne(-100).sum().item<int64_t>();
    if (!(std::isfinite(mbs[i].ce_weight) && mbs[i].ce_weight >= 0.0))
      throw std::invalid_argument(where + ".ceWeight must be finite and >= 0, got " + std::to_string(mbs[i].ce_weight));
    p.ce_weight = mbs[i].ce_weight;
    // Both address positions of a T5 target; a decoder-only student scores its completion rows only.
    if (std::string(student_->family()) != "t5" && (mbs[i].cache || mbs[i].consistency.defined()))
      throw std::invalid_argument(where + ": soft-label caches and consistency pairs need a T5 student; a " +
                                  student_->family() + " student takes its soft labels from an online mentor");
    if (mbs[i].consistency.defined()) {
      check_consistency_pairs(mbs[i].consistency, p.batch.labels.numel(), where);
      p.consistency = mbs[i].consistency;
    }
    if (mbs[i].cache) {
      const SoftLabelCache& c = *mbs[i].cache;
      if (c.info().vocab_size != V)
        throw std::invalid_argument(where + ": soft-label cache " + c.info().dir + " has vocab_size " +
                                    std::to_string(c.info().vocab_size) + " but the student has " + std::to_string(V));
      if (std::abs(c.info().tau - options_.tau) > 1e-12)
        throw std::invalid_argument(where + ": soft-label cache " + c.info().dir +
                                    " holds log-probs at tau=" + std::to_string(c.info().tau) +
                                    " but training uses tau=" + std::to_string(options_.tau));
      if (static_cast<int64_t>(mbs[i].example_ids.size()) != p.batch.labels.size(0))
        throw std::invalid_argument(where + ": " + std::to_string(mbs[i].example_ids.size()) + " example ids for " +
                                    std::to_string(p.batch.labels.size(0)) + " rows");
      p.topk = c.gather(mbs[i].example_ids, p.batch.labels, -100);
      const at::Device dev = student_->device();
      if (!dev.is_cpu()) p.topk = kd::TopK{p.topk.indices.to(dev), p.topk.logprobs.to(dev), p.topk.rest_mass.to(dev)};
    } else if (!mbs[i].example_ids.empty()) {
      throw std::invalid_argument(where + ": exampleIds given without a soft-label cache");
    }
    if (mentor_ && mbs[i].cache)
      throw std::invalid_argument(where + ": soft labels come from the online mentor or from a cache, not both");
    out.push_back(std::move(p));
  }
  return out;
}

kd::KdLoss Trainer::micro_batch_loss(const Prepared& p, bool train, at::Tensor* consistency) {
  const bool autocast = autocast_on();
  const at::Tensor& W = student_->lm_head_weight();
  model::HeadInput head;  // [N, d] at the scored rows, and their labels [N]
  {
    AutocastScope ac(student_->device(), autocast);
    t5::ActivationCheckpointScope checkpointing(train ? options_.activation_checkpointing : 0);
    head = student_->head_input(p.batch, train);
  }
  // The loss runs outside autocast, in the head's dtype (fp32 for an fp32 model).
  at::Tensor hidden = head.hidden.to(W.scalar_type());
  // The fused loss rejects non-finite logits; a diverged student is a training outcome to
  // report (the loop stops and keeps its last good checkpoint), not a bad-input error.
  if (!hidden.detach().isfinite().all().item<bool>()) throw NonFiniteStudent();
  at::Tensor labels = head.labels;
  // MCC-KD: the answer positions' logits only (train/consistency.h), added to whichever loss below.
  at::Tensor cons = p.consistency.size() > 0 ? answer_consistency(hidden, W, p.consistency) : at::Tensor();
  if (consistency) *consistency = cons;
  auto with_consistency = [&](kd::KdLoss l) {
    if (cons.defined()) l.loss = l.loss + cons;
    return l;
  };

  kd::KdOptions o;
  o.reduction = kd::Reduction::Sum;  // divided by the step's token count by the caller
  o.tau = options_.tau;
  o.divergence = options_.divergence;
  o.beta = options_.beta;
  o.alpha = options_.alpha;
  o.hard_weight = p.ce_weight * (1.0 - options_.lambda_);
  o.soft_weight = options_.lambda_;
  o.validate = false;  // CPU always validates; on CUDA a sync per micro-batch is not worth it
  if (mentor_) {
    at::Tensor mentor_logits;
    {
      at::NoGradGuard no_grad;
      AutocastScope ac(mentor_->device(), autocast);
      mentor_logits = mentor_->teacher_forced_logits(p.batch);  // the same rows as the student's
    }
    return with_consistency(
        kd::kd_loss_linear(hidden, W, mentor_logits, kd::TopK{}, labels, o, options_.loss_chunk_rows));
  }
  if (p.topk.indices.defined())
    return with_consistency(kd::kd_loss_linear(hidden, W, at::Tensor(), p.topk, labels, o, options_.loss_chunk_rows));
  // No mentor and no cache: plain cross-entropy, the op's no-mentor form (kl = 0, no mentor work),
  // unweighted (λ weighs CE against KL only when there are soft labels).
  o.hard_weight = p.ce_weight;
  o.soft_weight = 0.0;
  return with_consistency(kd::kd_loss_linear(hidden, W, at::Tensor(), kd::TopK{}, labels, o, options_.loss_chunk_rows));
}

StepResult Trainer::step(const std::vector<MicroBatch>& micro_batches) {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> self(mutex_);
  ModelLocks locks(*student_, mentor_.get());
  require_optimizer();  // train.sharding without a process group fails before any work
  std::vector<Prepared> prepared = prepare(micro_batches);
  StepResult r;
  for (const auto& p : prepared) {
    r.tokens += p.tokens;
    r.source_tokens += p.batch.attention_mask.sum().item<int64_t>();
  }
  // Data parallel: normalise by the token count over all ranks (parallel/grad_sync.h).
  const int64_t step_tokens = grad_sync_ ? grad_sync_->global_count(r.tokens) : r.tokens;
  if (step_tokens == 0) throw std::invalid_argument("train step: no target tokens (every label is -100)");

  // runtime.configure({trainProfile}) (MENTOR_KD_TRAIN_PROFILE=trace.json) writes a chrome://tracing
  // profile of each step (the last one wins).
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (const std::string path = runtime::train_profile_path(); !path.empty())
    profile = std::make_unique<torch::autograd::profiler::RecordProfile>(path);
  student_->zero_grad();
  double loss_sum = 0, ce_sum = 0, kl_sum = 0, cons_sum = 0;
  bool sync_armed = false;
  {
    at::AutoGradMode grad_mode(true);
    const double inv_tokens = 1.0 / static_cast<double>(step_tokens);
    // Dropout masks keyed per micro-batch (t5/dropout.h): one draw per step from the default
    // generator (the same on every rank), mixed with the micro-batch's index among all ranks'
    // micro-batches of the step. W ranks x A micro-batches == one process accumulating W*A.
    const uint64_t step_key = draw_step_key();
    const uint64_t first_index = static_cast<uint64_t>(grad_sync_ ? grad_sync_->rank() : 0) * prepared.size();
    try {
      for (size_t i = 0; i < prepared.size(); ++i) {
        const Prepared& p = prepared[i];
        auto tf = std::chrono::steady_clock::now();
        at::Tensor cons;
        kd::KdLoss l = [&] {
          const uint64_t key = t5::mix_dropout_key(step_key, first_index + i);
          t5::DropoutStreamScope stream(key);
          if (student_->device().is_cuda()) {
            // at::dropout on CUDA draws Philox from the device generator: give it the key.
            at::Generator gen = at::globalContext().defaultGenerator(student_->device());
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_current_seed(key);
          }
          return micro_batch_loss(p, true, &cons);
        }();
        r.forward_seconds += seconds_since(tf);
        // The last backward all-reduces gradient buckets as they become final.
        if (grad_sync_ && &p == &prepared.back()) {
          grad_sync_->prepare_for_backward();
          sync_armed = true;
        }
        auto tb = std::chrono::steady_clock::now();
        (l.loss * inv_tokens).backward();
        r.backward_seconds += seconds_since(tb);
        loss_sum += l.loss.item<double>();
        ce_sum += p.ce_weight * l.ce.item<double>();  // the CE that counts (none for on-policy rows)
        kl_sum += l.kl.item<double>();
        if (cons.defined()) cons_sum += cons.item<double>();
      }
    } catch (const NonFiniteStudent&) {
      loss_sum = ce_sum = kl_sum = std::numeric_limits<double>::quiet_NaN();
    } catch (const kd::NonFiniteLogits&) {
      // Logits that overflowed to Inf from finite activations.
      loss_sum = ce_sum = kl_sum = std::numeric_limits<double>::quiet_NaN();
    }
  }
  if (grad_sync_) {
    // Every rank takes part even after a non-finite loss: the NaN then reaches all of them
    // through the sums, and all skip the update together.
    if (!sync_armed) grad_sync_->prepare_for_backward();
    grad_sync_->finish_backward();
    const std::vector<double> s =
        grad_sync_->sum({loss_sum, ce_sum, kl_sum, static_cast<double>(r.source_tokens), cons_sum});
    loss_sum = s[0];
    ce_sum = s[1];
    kl_sum = s[2];
    r.source_tokens = static_cast<int64_t>(s[3]);
    cons_sum = s[4];
    r.tokens = step_tokens;
  }
  const double n = static_cast<double>(r.tokens);
  r.loss = loss_sum / n;
  r.ce = ce_sum / n;
  r.kl = kl_sum / n;
  r.consistency = cons_sum / n;
  const auto to = std::chrono::steady_clock::now();
  r.grad_norm = step_grad_norm();  // global_grad_norm, or over the shards (trainer_sharding.cc)
  r.lr = schedule_.lr(global_step_);
  r.status = std::isfinite(r.loss) && std::isfinite(r.grad_norm) ? StepStatus::Ok : StepStatus::NonFinite;
  if (r.status == StepStatus::Ok) {
    optimizer_step(r.lr, clip_coefficient(r.grad_norm, options_.max_grad_norm));
    ++global_step_;
  }
  student_->zero_grad();  // frees the gradients between steps
  if (!heap_released_) {
    // The weights and AdamW moments are in place: return what was freed before them (runtime/heap.h).
    runtime::release_free_heap_pages();
    heap_released_ = true;
  }
  r.optimizer_seconds = seconds_since(to);
  r.step = global_step_;
  r.seconds = seconds_since(t0);
  return r;
}

LossResult Trainer::evaluate_loss(const std::vector<MicroBatch>& micro_batches) {
  std::lock_guard<std::mutex> self(mutex_);
  ModelLocks locks(*student_, mentor_.get());
  std::vector<Prepared> prepared = prepare(micro_batches);
  at::NoGradGuard no_grad;
  LossResult r;
  double loss_sum = 0, ce_sum = 0, kl_sum = 0, cons_sum = 0;
  try {
    for (const auto& p : prepared) {
      r.tokens += p.tokens;
      at::Tensor cons;
      kd::KdLoss l = micro_batch_loss(p, false, &cons);
      loss_sum += l.loss.item<double>();
      ce_sum += p.ce_weight * l.ce.item<double>();
      kl_sum += l.kl.item<double>();
      if (cons.defined()) cons_sum += cons.item<double>();
    }
  } catch (const NonFiniteStudent&) {
    loss_sum = ce_sum = kl_sum = std::numeric_limits<double>::quiet_NaN();
  }
  const double n = static_cast<double>(std::max<int64_t>(1, r.tokens));
  r.loss = loss_sum / n;
  r.ce = ce_sum / n;
  r.kl = kl_sum / n;
  r.consistency = cons_sum / n;
  r.status = std::isfinite(r.loss) ? StepStatus::Ok : StepStatus::NonFinite;
  return r;
}

void Trainer::save_checkpoint(const std::string& dir) {
  std::lock_guard<std::mutex> self(mutex_);
  std::lock_guard<std::mutex> model_lock(student_->mutex());
  fs::create_directories(dir);
  // A LoRA student's checkpoint holds its adapters in PEFT's format, not the frozen base (t5/lora.h).
  if (const t5::T5Model* adapted = lora_student(*student_))
    adapted->save_lora(dir, /*with_model_config=*/true);
  else
    student_->save(dir, 0);
  const auto& s = schedule_;
  std::map<std::string, std::string> meta{
      {"format", "mentor-kd-optimizer"},
      {"global_step", std::to_string(global_step_)},
      {"optimizer", "adamw"},
      {"schedule", schedule_kind_name(s.kind)},
  };
  write_optimizer_state(dir, meta);  // optimizer.safetensors, or this rank's shard (trainer_sharding.cc)
  io::write_safetensors((fs::path(dir) / kRngFile).string(), rng_state(), {{"format", "mentor-kd-rng"}});
}

void Trainer::load_checkpoint(const std::string& dir) {
  std::lock_guard<std::mutex> self(mutex_);
  std::lock_guard<std::mutex> model_lock(student_->mutex());
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": not a checkpoint directory");
  const std::string optimizer_file = optimizer_file_name(dir);  // refuses another train.sharding / world size
  for (const std::string& f : {std::string("config.json"), optimizer_file, std::string(kRngFile)})
    if (!fs::exists(root / f)) throw std::runtime_error(dir + ": incomplete checkpoint, " + f + " is missing");
  const std::string why = student_->checkpoint_mismatch(dir);
  if (!why.empty()) throw std::runtime_error(dir + ": refusing a checkpoint of a different architecture: " + why);

  // Read and check everything before changing the model or the optimizer.
  const t5::T5Model* adapted = lora_student(*student_);
  const io::NamedTensors saved = adapted ? adapted->read_lora(dir) : student_->read_checkpoint_parameters(dir);
  io::SafetensorsFile opt((root / optimizer_file).string());
  io::NamedTensors opt_tensors;
  for (const auto& e : opt.header().tensors) opt_tensors.emplace_back(e.name, opt.tensor(e));
  auto meta_it = opt.header().metadata.find("global_step");
  if (meta_it == opt.header().metadata.end()) throw std::runtime_error(opt.path() + ": metadata has no global_step");
  const int64_t step = std::stoll(meta_it->second);
  io::SafetensorsFile rng((root / kRngFile).string());
  io::NamedTensors rng_tensors;
  for (const auto& e : rng.header().tensors) rng_tensors.emplace_back(e.name, rng.tensor(e).clone());

  // load_state checks every tensor before it changes anything.
  load_optimizer_state(opt_tensors, opt.header().metadata, opt.path());
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, t] : saved) student_->set_parameter(name, t);
  }
  set_rng_state(rng_tensors, rng.path());
  global_step_ = step;
}

}  // namespace mentor_kd::train
