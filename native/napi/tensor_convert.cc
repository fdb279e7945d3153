#include "napi/tensor_convert.h"

#include <c10/util/Exception.h>

#include <cstring>
#include <stdexcept>

namespace mentor_kd {

std::vector<int64_t> shape_from_js(const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw std::invalid_argument(what + ".shape must be an array of integers");
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    if (!d.IsNumber()) throw std::invalid_argument(what + ".shape[" + std::to_string(i) + "] is not a number");
    double v = d.As<Napi::Number>().DoubleValue();
    if (v < 0 || v != static_cast<double>(static_cast<int64_t>(v)))
      throw std::invalid_argument(what + ".shape[" + std::to_string(i) + "] must be a non-negative integer");
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

Napi::Array shape_to_js(Napi::Env env, at::IntArrayRef shape) {
  Napi::Array arr = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i)
    arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
  return arr;
}

at::Tensor tensor_from_js(const Napi::Value& value, const std::string& what) {
  if (!value.IsObject()) throw std::invalid_argument(what + " must be a tensor {data, shape}");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value data = obj.Get("data");
  if (!data.IsTypedArray()) throw std::invalid_argument(what + ".data must be a typed array");
  auto shape = shape_from_js(obj.Get("shape"), what);
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  at::ScalarType dtype;
  switch (ta.TypedArrayType()) {
    case napi_int32_array: dtype = at::kInt; break;
    case napi_bigint64_array: dtype = at::kLong; break;
    case napi_float32_array: dtype = at::kFloat; break;
    case napi_float64_array: dtype = at::kDouble; break;
    case napi_uint8_array: dtype = at::kByte; break;
    default: throw std::invalid_argument(what + ".data has an unsupported typed array type");
  }
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (static_cast<size_t>(numel) != ta.ElementLength()) {
    throw std::invalid_argument(what + ": shape [" + c10::Join(", ", shape) + "] needs " + std::to_string(numel) +
                                " elements but data has " + std::to_string(ta.ElementLength()));
  }
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  if (numel > 0) std::memcpy(out.data_ptr(), src, ta.ByteLength());
  return out;
}

Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& tensor) {
  at::Tensor t = tensor.detach().to(at::kCPU);
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("shape", shape_to_js(env, t.sizes()));
  obj.Set("dtype", dtype_name(t.scalar_type()));
  Napi::Value data;
  if (t.scalar_type() == at::kDouble) {
    t = t.contiguous();
    auto arr = Napi::Float64Array::New(env, t.numel());
    if (t.numel()) std::memcpy(arr.Data(), t.data_ptr(), t.numel() * sizeof(double));
    data = arr;
  } else if (at::isFloatingType(t.scalar_type())) {
    t = t.to(at::kFloat).contiguous();
    auto arr = Napi::Float32Array::New(env, t.numel());
    if (t.numel()) std::memcpy(arr.Data(), t.data_ptr(), t.numel() * sizeof(float));
    data = arr;
  } else if (t.scalar_type() == at::kBool) {
    t = t.to(at::kByte).contiguous();
    auto arr = Napi::Uint8Array::New(env, t.numel());
    if (t.numel()) std::memcpy(arr.Data(), t.data_ptr(), t.numel());
    data = arr;
  } else {
    t = t.to(at::kInt).contiguous();
    auto arr = Napi::Int32Array::New(env, t.numel());
    if (t.numel()) std::memcpy(arr.Data(), t.data_ptr(), t.numel() * sizeof(int32_t));
    data = arr;
  }
  obj.Set("data", data);
  return obj;
}

double get_number(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw std::invalid_argument(std::string("option '") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool get_bool(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) throw std::invalid_argument(std::string("option '") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) throw std::invalid_argument(std::string("option '") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kDouble: return "float64";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kBool: return "bool";
    case at::kByte: return "uint8";
    default: return c10::toString(t);
  }
}

at::ScalarType dtype_from_name(const std::string& name) {
  if (name == "float32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "half" || name == "fp16") return at::kHalf;
  if (name == "float64" || name == "double") return at::kDouble;
  throw std::invalid_argument("unknown dtype '" + name + "' (expected float32, bfloat16, float16 or float64)");
}

at::Device device_from_name(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA())
      throw std::invalid_argument("device '" + name +
                                  "' requested but this build of libtorch has no CUDA (or no GPU is visible)");
    return at::Device(name);
  }
  throw std::invalid_argument("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
}

}  // namespace mentor_kd
