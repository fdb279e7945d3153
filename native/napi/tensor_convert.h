// JS <-> at::Tensor conversion. A JS tensor is { data: TypedArray, shape: number[] }.
//
// from JS: Int32Array -> int32, BigInt64Array -> int64, Float32Array -> float32,
//          Float64Array -> float64, Uint8Array -> uint8; always copied (JS may
//          mutate or collect its buffer while a worker runs).
// to JS:   float tensors of any width -> Float32Array (float64 -> Float64Array),
//          integer tensors -> Int32Array (token ids), bool -> Uint8Array.
// Conversion to JS touches the JS heap: call it on the main thread only
// (AsyncWorker::OnOK), never from Execute.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <string>
#include <vector>

namespace mentor_kd {

// `what` names the argument in error messages ("inputIds", "labels", ...).
at::Tensor tensor_from_js(const Napi::Value& value, const std::string& what);
Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& tensor);
std::vector<int64_t> shape_from_js(const Napi::Value& value, const std::string& what);
Napi::Array shape_to_js(Napi::Env env, at::IntArrayRef shape);

// Small helpers for option objects.
double get_number(const Napi::Object& o, const char* key, double fallback);
bool get_bool(const Napi::Object& o, const char* key, bool fallback);
std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback);
std::string dtype_name(at::ScalarType t);
at::ScalarType dtype_from_name(const std::string& name);  // float32|bfloat16|float16|float64
at::Device device_from_name(const std::string& name);     // cpu|cuda|cuda:N

}  // namespace mentor_kd
