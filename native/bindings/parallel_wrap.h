// For other bindings (the trainer): the GradSync behind a JS DataParallel, so a
// training step can sum token counts, gradients and loss sums over ranks.
#pragma once
#include <napi.h>

#include <memory>

#include "parallel/grad_sync.h"
#include "t5/model.h"

namespace mentor_kd {

// Throws unless `value` is a native DataParallel over `model` (or this build has no c10d).
std::shared_ptr<dist::GradSync> GradSyncFrom(const Napi::Value& value, const char* what, const t5::T5Model* model);

}  // namespace mentor_kd
