// The message of the exception being handled, for every layer (napi, dist, ...).
// libtorch errors carry a C++ backtrace that means nothing to a JS caller: keep only the message.
#pragma once
#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace mentor_kd {

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

}  // namespace mentor_kd
