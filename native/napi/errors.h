// One place where C++ exceptions become JavaScript errors. Every native entry
// point (synchronous method or AsyncWorker) funnels through these, so a
// c10::Error, std::exception or anything else thrown by libtorch surfaces as a
// JS Error with a readable message and never aborts the process.
#pragma once
#include <napi.h>
#include "util/exception.h"

#include <exception>
#include <string>

namespace mentor_kd {

// Runs fn(); converts any C++ exception into a pending JS exception.
template <typename Fn>
auto guard_js(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw Napi::Error::New(env, current_exception_message());
  }
}

}  // namespace mentor_kd
