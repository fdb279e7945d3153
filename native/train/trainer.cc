#include "train/trainer.h"

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
  ModelLocks(const t5::T5Model& student, const t5::T5Model* mentor) : a_(student.mutex(), std::defer_lock), b_() {
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

std::string architecture_mismatch(const t5::T5Config& ck, const t5::T5Config& cur) {
  std::ostringstream os;
  auto cmp = [&](const char* field, auto a, auto b) {
    if (a != b)
      os << (os.tellp() > 0 ? "; " : "") << field << " is " << a << " in the checkpoint but " << b
         << " in the model being trained";
  };
  cmp("vocab_size", ck.vocab_size, cur.vocab_size);
  cmp("d_model", ck.d_model, cur.d_model);
  cmp("d_kv", ck.d_kv, cur.d_kv);
  cmp("d_ff", ck.d_ff, cur.d_ff);
  cmp("num_layers", ck.num_layers, cur.num_layers);
  cmp("num_decoder_layers", ck.num_decoder_layers, cur.num_decoder_layers);
  cmp("num_heads", ck.num_heads, cur.num_heads);
  cmp("relative_attention_num_buckets", ck.relative_attention_num_buckets, cur.relative_attention_num_buckets);
  cmp("relative_attention_max_distance", ck.relative_attention_max_distance, cur.relative_attention_max_distance);
  cmp("feed_forward_proj", ck.feed_forward_proj, cur.feed_forward_proj);
  cmp("tie_word_embeddings", ck.tie_word_embeddings, cur.tie_word_embeddings);
  return os.str();
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

Trainer::Trainer(std::shared_ptr<t5::T5Model> student, std::shared_ptr<t5::T5Model> mentor, TrainerOptions options)
    : student_(std::move(student)), mentor_(std::move(mentor)), options_(std::move(options)) {
  if (!student_) throw std::invalid_argument("trainer: the student model is missing");
  options_.validate();
  schedule_ = options_.schedule();
  if (mentor_) {
    if (mentor_.get() == student_.get())
      throw std::invalid_argument("trainer: the mentor must be a different model from the student");
    if (mentor_->config().vocab_size != student_->config().vocab_size)
      throw std::invalid_argument("trainer: the mentor has vocab_size " + std::to_string(mentor_->config().vocab_size) +
                                  " but the student has " + std::to_string(student_->config().vocab_size) +
                                  " (soft labels need one shared vocabulary)");
    const auto& mc = mentor_->config();
    const auto& sc = student_->config();
    if (mc.decoder_start_token_id != sc.decoder_start_token_id || mc.pad_token_id != sc.pad_token_id)
      throw std::invalid_argument("trainer: the mentor's decoder_start_token_id/pad_token_id (" +
                                  std::to_string(mc.decoder_start_token_id) + "/" + std::to_string(mc.pad_token_id) +
                                  ") differ from the student's (" + std::to_string(sc.decoder_start_token_id) + "/" +
                                  std::to_string(sc.pad_token_id) +
                                  "); teacher forcing feeds both the same decoder inputs");
    if (mentor_->device() != student_->device())
      throw std::invalid_argument("trainer: the mentor is on " + mentor_->device().str() + " but the student is on " +
                                  student_->device().str());
  }
  if (student_->device().is_cuda()) {
    // TF32 matmuls, as torch.backends.cuda.matmul.allow_tf32 = True.
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  std::lock_guard<std::mutex> lock(student_->mutex());
  optimizer_ = std::make_unique<AdamW>(student_->parameters(), options_.adamw());
  if (options_.seed) seed_rng(*options_.seed);
}

std::vector<Trainer::Prepared> Trainer::prepare(const std::vector<MicroBatch>& mbs) const {
  if (mbs.empty()) throw std::invalid_argument("train step: no micro-batches");
  std::vector<Prepared> out;
  const int64_t V = student_->config().vocab_size;
  for (size_t i = 0; i < mbs.size(); ++i) {
    const std::string where = "microBatches[" + std::to_string(i) + "]";
    if (!mbs[i].batch.labels.defined()) throw std::invalid_argument(where + ".labels is required");
    Prepared p;
    try {
      p.batch = student_->prepare(mbs[i].batch);
    } catch (const std::exception& e) {
      throw std::invalid_argument(where + ": " + e.what());
    }
    p.tokens = p.batch.labels.ne(-100).sum().item<int64_t>();
    if (!(mbs[i].ce_weight >= 0.0 && mbs[i].ce_weight <= 1.0))
      throw std::invalid_argument(where + ".ceWeight must be in [0, 1], got " + std::to_string(mbs[i].ce_weight));
    p.ce_weight = mbs[i].ce_weight;
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

kd::KdLoss Trainer::micro_batch_loss(const Prepared& p, bool train) {
  const bool autocast = autocast_on();
  const int64_t d = student_->config().d_model;
  const at::Tensor& W = student_->lm_head_weight();
  at::Tensor hidden;
  {
    AutocastScope ac(student_->device(), autocast);
    t5::ActivationCheckpointScope checkpointing(train ? options_.activation_checkpointing : 0);
    at::Tensor enc = student_->encode(p.batch.input_ids, p.batch.attention_mask, train);
    at::Tensor dec =
        student_->decode(p.batch.decoder_input_ids, p.batch.decoder_attention_mask, enc, p.batch.attention_mask, train);
    hidden = student_->lm_head_input(dec);
  }
  // The loss runs outside autocast, in the head's dtype (fp32 for an fp32 model).
  hidden = hidden.to(W.scalar_type()).reshape({-1, d});
  // The fused loss rejects non-finite logits; a diverged student is a training outcome to
  // report (the loop stops and keeps its last good checkpoint), not a bad-input error.
  if (!hidden.detach().isfinite().all().item<bool>()) throw NonFiniteStudent();
  at::Tensor labels = p.batch.labels.reshape({-1});

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
      at::Tensor enc = mentor_->encode(p.batch.input_ids, p.batch.attention_mask, false);
      at::Tensor dec = mentor_->decode(p.batch.decoder_input_ids, p.batch.decoder_attention_mask, enc,
                                       p.batch.attention_mask, false);
      mentor_logits = mentor_->logits(dec).reshape({-1, mentor_->config().vocab_size});
    }
    return kd::kd_loss_linear(hidden, W, mentor_logits, kd::TopK{}, labels, o, options_.loss_chunk_rows);
  }
  if (p.topk.indices.defined())
    return kd::kd_loss_linear(hidden, W, at::Tensor(), p.topk, labels, o, options_.loss_chunk_rows);
  // No mentor and no cache: plain cross-entropy, the op's no-mentor form (kl = 0, no mentor work),
  // unweighted (λ weighs CE against KL only when there are soft labels).
  o.hard_weight = p.ce_weight;
  o.soft_weight = 0.0;
  return kd::kd_loss_linear(hidden, W, at::Tensor(), kd::TopK{}, labels, o, options_.loss_chunk_rows);
}

StepResult Trainer::step(const std::vector<MicroBatch>& micro_batches) {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> self(mutex_);
  ModelLocks locks(*student_, mentor_.get());
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
  double loss_sum = 0, ce_sum = 0, kl_sum = 0;
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
        kd::KdLoss l = [&] {
          const uint64_t key = t5::mix_dropout_key(step_key, first_index + i);
          t5::DropoutStreamScope stream(key);
          if (student_->device().is_cuda()) {
            // at::dropout on CUDA draws Philox from the device generator: give it the key.
            at::Generator gen = at::globalContext().defaultGenerator(student_->device());
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_current_seed(key);
          }
          return micro_batch_loss(p, true);
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
    const std::vector<double> s = grad_sync_->sum({loss_sum, ce_sum, kl_sum, static_cast<double>(r.source_tokens)});
    loss_sum = s[0];
    ce_sum = s[1];
    kl_sum = s[2];
    r.source_tokens = static_cast<int64_t>(s[3]);
    r.tokens = step_tokens;
  }
  const double n = static_cast<double>(r.tokens);
  r.loss = loss_sum / n;
  r.ce = ce_sum / n;
  r.kl = kl_sum / n;
  const auto to = std::chrono::steady_clock::now();
  r.grad_norm = global_grad_norm(student_->parameters());
  r.lr = schedule_.lr(global_step_);
  r.status = std::isfinite(r.loss) && std::isfinite(r.grad_norm) ? StepStatus::Ok : StepStatus::NonFinite;
  if (r.status == StepStatus::Ok) {
    optimizer_->step(r.lr, clip_coefficient(r.grad_norm, options_.max_grad_norm));
    ++global_step_;
  }
  student_->zero_grad();  // frees the gradients between steps
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
  double loss_sum = 0, ce_sum = 0, kl_sum = 0;
  try {
    for (const auto& p : prepared) {
      r.tokens += p.tokens;
      kd::KdLoss l = micro_batch_loss(p, false);
      loss_sum += l.loss.item<double>();
      ce_sum += p.ce_weight * l.ce.item<double>();
      kl_sum += l.kl.item<double>();
    }
  } catch (const NonFiniteStudent&) {
    loss_sum = ce_sum = kl_sum = std::numeric_limits<double>::quiet_NaN();
  }
  const double n = static_cast<double>(std::max<int64_t>(1, r.tokens));
  r.loss = loss_sum / n;
  r.ce = ce_sum / n;
  r.kl = kl_sum / n;
  r.status = std::isfinite(r.loss) ? StepStatus::Ok : StepStatus::NonFinite;
  return r;
}

void Trainer::save_checkpoint(const std::string& dir) {
  std::lock_guard<std::mutex> self(mutex_);
  std::lock_guard<std::mutex> model_lock(student_->mutex());
  fs::create_directories(dir);
  student_->save(dir, 0);
  const auto& s = schedule_;
  std::map<std::string, std::string> meta{
      {"format", "mentor-kd-optimizer"},
      {"global_step", std::to_string(global_step_)},
      {"optimizer", "adamw"},
      {"schedule", schedule_kind_name(s.kind)},
  };
  io::write_safetensors((fs::path(dir) / kOptimizerFile).string(), optimizer_->state_tensors(), meta);
  io::write_safetensors((fs::path(dir) / kRngFile).string(), rng_state(), {{"format", "mentor-kd-rng"}});
}

void Trainer::load_checkpoint(const std::string& dir) {
  std::lock_guard<std::mutex> self(mutex_);
  std::lock_guard<std::mutex> model_lock(student_->mutex());
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": not a checkpoint directory");
  for (const char* f : {"config.json", kOptimizerFile, kRngFile})
    if (!fs::exists(root / f)) throw std::runtime_error(dir + ": incomplete checkpoint, " + f + " is missing");
  const t5::T5Config ck = t5::read_t5_config((root / "config.json").string());
  const std::string why = architecture_mismatch(ck, student_->config());
  if (!why.empty()) throw std::runtime_error(dir + ": refusing a checkpoint of a different architecture: " + why);

  // Read and check everything before changing the model or the optimizer.
  std::shared_ptr<t5::T5Model> saved = t5::T5Model::load(dir, student_->device(), student_->dtype());
  io::SafetensorsFile opt((root / kOptimizerFile).string());
  io::NamedTensors opt_tensors;
  for (const auto& e : opt.header().tensors) opt_tensors.emplace_back(e.name, opt.tensor(e));
  auto meta_it = opt.header().metadata.find("global_step");
  if (meta_it == opt.header().metadata.end()) throw std::runtime_error(opt.path() + ": metadata has no global_step");
  const int64_t step = std::stoll(meta_it->second);
  io::SafetensorsFile rng((root / kRngFile).string());
  io::NamedTensors rng_tensors;
  for (const auto& e : rng.header().tensors) rng_tensors.emplace_back(e.name, rng.tensor(e).clone());

  // load_state checks every tensor before it changes anything.
  optimizer_->load_state(opt_tensors, opt.path());
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, t] : saved->parameters()) student_->set_parameter(name, t);
  }
  set_rng_state(rng_tensors, rng.path());
  global_step_ = step;
}

}  // namespace mentor_kd::train
