// For other bindings (the trainer, the dev addon): the objects behind a JS
// DataParallel, so a training step can sum token counts, gradients and loss
// sums over ranks.
#pragma once
#include <napi.h>

#include <memory>

#include "parallel/grad_sync.h"
#include "t5/model.h"
#ifdef MENTOR_KD_WITH_C10D
#include "parallel/grad_reducer.h"
#endif

namespace mentor_kd {

// Throws unless `value` is a native DataParallel over `model` (or this build has no c10d).
std::shared_ptr<dist::GradSync> GradSyncFrom(const Napi::Value& value, const char* what, const t5::T5Model* model);

#ifdef MENTOR_KD_WITH_C10D
// The reducer behind a native DataParallel; throws naming `what` for anything else.
std::shared_ptr<dist::GradReducer> ReducerFrom(const Napi::Value& value, const char* what);
Napi::Object ReduceStatsToJs(Napi::Env env, const dist::ReduceStats& s);
#endif

}  // namespace mentor_kd
