// Reading arguments and option objects of binding calls. Every failure is a
// std::invalid_argument naming the argument or option, which guard_js turns
// into a JS Error.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mentor_kd {

// info[i] as an options object; an empty object when it is missing, undefined or null.
Napi::Object options_arg(const Napi::CallbackInfo& info, size_t i, const char* what = "options");
// info[i], which must be a string.
std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what);
// o[key] as an integer (fallback when absent).
int64_t get_int(const Napi::Object& o, const char* key, int64_t fallback);
// o[key] as a tensor, or an undefined tensor when absent; errors name `where.key` (or `key`).
at::Tensor optional_tensor(const Napi::Object& o, const char* key, const std::string& where = "");
// A JS array of integers >= 0.
std::vector<int64_t> int_array(const Napi::Value& v, const std::string& what);

}  // namespace mentor_kd
