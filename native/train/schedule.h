// Learning-rate schedules, as HF transformers' get_*_schedule_with_warmup:
// the multiplier for optimizer step t (0-based, the update about to happen)
// is warmup t/W for t < W, then constant, linear decay to 0 at total_steps, or
// half a cosine down to 0. Like HF, the first update with warmup uses lr 0.
#pragma once
#include <cstdint>
#include <string>

namespace mentor_kd::train {

enum class ScheduleKind { Constant, Linear, Cosine };

ScheduleKind schedule_kind_from_name(const std::string& name);  // constant|linear|cosine
const char* schedule_kind_name(ScheduleKind kind);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Constant;
  double base_lr = 0;  // set by the caller (TrainerOptions::learning_rate)
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // needed by linear and cosine

  // Throws naming the field when the settings cannot work.
  void validate() const;
  double multiplier(int64_t step) const;
  double lr(int64_t step) const { return base_lr * multiplier(step); }
};

}  // namespace mentor_kd::train
