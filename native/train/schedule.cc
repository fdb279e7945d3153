#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace mentor_kd::train {

ScheduleKind schedule_kind_from_name(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  throw std::invalid_argument("lr_scheduler_type: unknown kind '" + name + "' (expected constant, linear or cosine)");
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Cosine: return "cosine";
  }
  return "?";
}

void LrSchedule::validate() const {
  if (!std::isfinite(base_lr) || base_lr < 0)
    throw std::invalid_argument("schedule: learning_rate must be a finite number >= 0");
  if (warmup_steps < 0) throw std::invalid_argument("schedule: warmup_steps must be >= 0");
  if (kind != ScheduleKind::Constant && total_steps <= 0)
    throw std::invalid_argument(std::string("schedule: '") + schedule_kind_name(kind) + "' needs max_steps > 0");
  if (kind != ScheduleKind::Constant && warmup_steps > total_steps)
    throw std::invalid_argument("schedule: warmup_steps (" + std::to_string(warmup_steps) + ") exceeds max_steps (" +
                                std::to_string(total_steps) + ")");
}

double LrSchedule::multiplier(int64_t step) const {
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  switch (kind) {
    case ScheduleKind::Constant: return 1.0;
    case ScheduleKind::Linear:
      return std::max(0.0, static_cast<double>(total_steps - step) /
                               static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps)));
    case ScheduleKind::Cosine: {
      const double progress = static_cast<double>(step - warmup_steps) /
                              static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
  }
  return 1.0;
}

}  // namespace mentor_kd::train
