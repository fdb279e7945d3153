// One place where C++ exceptions become JavaScript errors. Every native entry
// point (synchronous method or AsyncWorker) funnels through these, so a
// c10::Error, std::exception or anything else thrown by libtorch surfaces as a
// JS Error with a readable message and never aborts the process.
#pragma once
#include <napi.h>
#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace mentor_kd {

// Message of the exception currently being handled. libtorch errors carry a
// C++ backtrace that means nothing to a JS caller; keep only the message.
inline std::string current_exception_message() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown native error";
  }
}

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
