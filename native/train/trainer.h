// The training engine's native half: one call = one optimizer step
// (forward, loss, backward over every micro-batch, gradient clipping, AdamW),
// so JS crosses into native code once per step. The models are model::LanguageModel
// (model/language_model.h): T5 or decoder-only, student and mentor of one family.
//
// Loss. The student's loss is the fused lm_head + CE + KL op
// (kd::kd_loss_linear), so the [N,V] logits are never materialised:
//   L = (1−λ)·CE + λ·KL(q_τ ‖ p_τ)  with soft labels (online mentor or cache),
//   L = CE                          without.
// Gradient accumulation: every micro-batch's loss is a sum over its target
// tokens, divided by the target-token count of the whole step, so a step over
// k micro-batches equals one step over their union (not a mean of means).
//
// Precision. bf16: bf16 autocast around the transformer on whatever device (fp32
// weights, the loss stays fp32). On CPU it pays only with AVX512-BF16/AMX (1.3x,
// where oneDNN runs the bf16 GEMMs), so lib/train defaults it to true on CUDA and
// false on CPU. CUDA also uses TF32 matmuls and fp32 master weights when the model
// itself is bf16/fp16 (AdamW keeps them). The online mentor runs teacher-forced under
// no-grad with dropout off, in its own dtype (bf16 on GPU).
//
// Exact resume. A checkpoint holds the model, the optimizer (moments, per-
// parameter steps, masters), the global step and the default generators'
// states (each step draws its dropout key from them: t5/dropout.h), so a resumed run repeats an uninterrupted
// one bit for bit on CPU, given the same data order (kept by lib/train).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "parallel/grad_sync.h"
#include "kd/kd_loss.h"
#include "model/language_model.h"
#include "t5/model.h"
#include "train/adamw.h"
#include "train/consistency.h"
#include "train/schedule.h"
#include "train/soft_labels.h"

namespace mentor_kd::train {

// The training settings under HF TrainingArguments' names (the same names in YAML,
// lib/train and the Trainer binding). No defaults here: the TS side
// (lib/config/train-settings.ts) supplies every value; validate() checks them
// (NaN, i.e. "not given", fails the checks).
struct TrainerOptions {
  double learning_rate = std::numeric_limits<double>::quiet_NaN();
  ScheduleKind lr_scheduler_type = ScheduleKind::Constant;
  int64_t warmup_steps = 0;
  int64_t max_steps = 0;  // the schedule's length (needed by linear and cosine)
  double adam_beta1 = std::numeric_limits<double>::quiet_NaN();
  double adam_beta2 = std::numeric_limits<double>::quiet_NaN();
  double adam_epsilon = std::numeric_limits<double>::quiet_NaN();
  double weight_decay = std::numeric_limits<double>::quiet_NaN();
  double max_grad_norm = std::numeric_limits<double>::quiet_NaN();  // <= 0: no clipping
  double lambda_ = std::numeric_limits<double>::quiet_NaN();  // λ, weight of the KL term when soft labels are given
  double tau = std::numeric_limits<double>::quiet_NaN();      // τ of the KL term
  kd::Divergence divergence = kd::Divergence::Unset;          // D of the soft-label term (lib sets it)
  double beta = std::numeric_limits<double>::quiet_NaN();     // jsd's β ∈ [0,1]
  double alpha = std::numeric_limits<double>::quiet_NaN();    // skew-kl / skew-reverse-kl's α ∈ [0,1)
  bool bf16 = false;             // bf16 autocast around the transformer, on whatever device
  std::optional<uint64_t> seed;  // seeds the default generators (dropout) at construction
  int64_t loss_chunk_rows = 0;   // rows per chunk of the fused loss (0 = automatic)
  // The student's blocks recomputed in backward (t5/checkpoint.h): 0 none, 1 every block, k every k-th.
  int64_t activation_checkpointing = 0;
  // train.sharding: AdamW state (zero1) and reduced gradients (zero2) split over the data-parallel
  // ranks (parallel/zero_optimizer.h); needs set_grad_sync before the first step.
  dist::Sharding sharding = dist::Sharding::None;

  LrSchedule schedule() const { return LrSchedule{lr_scheduler_type, learning_rate, warmup_steps, max_steps}; }
  AdamWOptions adamw() const { return AdamWOptions{adam_beta1, adam_beta2, adam_epsilon, weight_decay}; }
  void validate() const;
};

struct MicroBatch {
  // inputIds, attentionMask, labels (-100 ignored): a T5 source and target, or a decoder-only
  // prompt + completion with labels on the completion (model/language_model.h).
  model::TokenBatch batch;
  // Offline soft labels: a cache plus the example id of every row.
  std::shared_ptr<const SoftLabelCache> cache;
  std::vector<int64_t> example_ids;
  // Weight of this micro-batch's CE term, >= 0: its rows' loss is
  //   ce_weight·(1−λ)·CE + λ·D  (with soft labels),  ce_weight·CE  (without).
  // 0 for on-policy rows (lib/train/on-policy.ts): targets the student sampled itself
  // take the divergence only, no gold tokens. Their tokens still count in the step's
  // normaliser, so ce_weight = 1 everywhere is today's step exactly. Above 1 for
  // step-by-step's per-task means (lib/train/step-by-step.ts).
  double ce_weight = 1.0;
  // MCC-KD's answer-consistency pairs (train/consistency.h), added to the loss; none when empty.
  ConsistencyPairs consistency;
};

// How a step ended: Ok, or NonFinite (the loss or gradient was NaN/Inf; nothing was updated).
enum class StepStatus { Ok, NonFinite };
inline const char* step_status_name(StepStatus s) { return s == StepStatus::Ok ? "ok" : "non_finite"; }

struct StepResult {
  StepStatus status = StepStatus::Ok;
  int64_t step = 0;  // global step after this call (unchanged when not finite)
  double loss = 0, ce = 0, kl = 0;
  double consistency = 0;  // MCC-KD's term as it enters the loss (weights included), per target token
  double lr = 0;
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // target tokens that counted
  int64_t source_tokens = 0;
  double seconds = 0;
  // Where the time went: forward incl. the fused loss (which also computes the head's
  // gradients), backward through the transformer, and norm + clipping + AdamW.
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
};

struct LossResult {
  StepStatus status = StepStatus::Ok;  // NonFinite: the loss is NaN/Inf
  double loss = 0, ce = 0, kl = 0;
  double consistency = 0;
  int64_t tokens = 0;
};

class Trainer {
 public:
  // Student and mentor of one family (T5 or decoder-only) and one vocabulary; the mentor may be null.
  Trainer(std::shared_ptr<model::LanguageModel> student, std::shared_ptr<model::LanguageModel> mentor,
          TrainerOptions options);

  StepResult step(const std::vector<MicroBatch>& micro_batches);
  // The same loss with dropout off and no update (dev loss, comparisons).
  LossResult evaluate_loss(const std::vector<MicroBatch>& micro_batches);

  // Writes the HF model dir plus optimizer.safetensors and rng_state.safetensors into dir.
  void save_checkpoint(const std::string& dir);
  // Restores a save_checkpoint() dir; refuses a different architecture, naming the field.
  void load_checkpoint(const std::string& dir);

  // Data parallelism (parallel/grad_sync.h): when set, each step divides the loss by the
  // token count over all ranks and sums gradients and loss sums over ranks, so
  // every replica takes the same update. Set between steps; nullptr turns it off.
  // With options.sharding zero1/zero2 this also builds the sharded optimizer (fresh state; set it
  // once, before load_checkpoint) — train/trainer_sharding.cc.
  void set_grad_sync(std::shared_ptr<dist::GradSync> sync);
  // train.sharding: this rank's optimizer shard, optimizer-rank<R>-of-<W>.safetensors, into dir
  // (save_checkpoint writes the calling rank's too). Bytes of the optimizer state this rank holds.
  void save_optimizer_shard(const std::string& dir);
  int64_t optimizer_state_bytes() const;

  int64_t global_step() const { return global_step_; }
  const TrainerOptions& options() const { return options_; }
  const LrSchedule& schedule() const { return schedule_; }
  // Whether the transformer runs under bf16 autocast (options.bf16, on whatever device).
  bool autocast_on() const { return options_.bf16; }
  const std::shared_ptr<model::LanguageModel>& student() const { return student_; }
  const std::shared_ptr<model::LanguageModel>& mentor() const { return mentor_; }
  std::mutex& mutex() const { return mutex_; }

 private:
  struct Prepared {
    model::TokenBatch batch;  // labels per scored position (LanguageModel::prepare_batch)
    kd::TopK topk;
    int64_t tokens = 0;
    double ce_weight = 1.0;
    ConsistencyPairs consistency;
  };
  std::vector<Prepared> prepare(const std::vector<MicroBatch>& micro_batches) const;
  // The loss includes MCC-KD's consistency term when p has pairs; *consistency receives that term.
  kd::KdLoss micro_batch_loss(const Prepared& p, bool train, at::Tensor* consistency = nullptr);

  std::shared_ptr<model::LanguageModel> student_, mentor_;
  TrainerOptions options_;
  LrSchedule schedule_;
  std::unique_ptr<AdamW> optimizer_;
  int64_t global_step_ = 0;
  bool heap_released_ = false;  // after the first step (runtime/heap.h)
  std::shared_ptr<dist::GradSync> grad_sync_;
  // train.sharding (train/trainer_sharding.cc): replaces optimizer_ once a process group is set.
  std::shared_ptr<dist::ShardedOptimizer> sharded_;
  void require_optimizer() const;
  double step_grad_norm();
  void optimizer_step(double lr, double grad_scale);
  std::string optimizer_file_name(const std::string& dir) const;
  void write_optimizer_state(const std::string& dir, std::map<std::string, std::string> meta) const;
  void load_optimizer_state(const io::NamedTensors& tensors, const std::map<std::string, std::string>& meta,
                            const std::string& source);
  mutable std::mutex mutex_;
};

// Default CPU (and CUDA, when built with it) generator states, and back.
io::NamedTensors rng_state();
void set_rng_state(const io::NamedTensors& state, const std::string& source);
void seed_rng(uint64_t seed);

}  // namespace mentor_kd::train
