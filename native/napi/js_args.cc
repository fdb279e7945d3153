#include "napi/js_args.h"

#include <cmath>
#include <stdexcept>

#include "napi/tensor_convert.h"

namespace mentor_kd {

Napi::Object options_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw std::invalid_argument(std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw std::invalid_argument(std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t get_int(const Napi::Object& o, const char* key, int64_t fallback) {
  const double v = get_number(o, key, static_cast<double>(fallback));
  if (!std::isfinite(v) || v != std::floor(v))
    throw std::invalid_argument(std::string("option '") + key + "' must be an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

at::Tensor optional_tensor(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return at::Tensor();
  return tensor_from_js(v, where.empty() ? std::string(key) : where + "." + key);
}

std::vector<int64_t> int_array(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw std::invalid_argument(what + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) throw std::invalid_argument(what + "[" + std::to_string(i) + "] is not a number");
    const double d = x.As<Napi::Number>().DoubleValue();
    if (d != std::floor(d) || d < 0)
      throw std::invalid_argument(what + "[" + std::to_string(i) + "] must be an integer >= 0");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

}  // namespace mentor_kd
