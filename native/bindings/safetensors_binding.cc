// readSafetensors(path) / writeSafetensors(path, tensors, metadata): the native
// reader and writer for JS (tests, soft-label caches, tooling).
#include <napi.h>

#include "io/safetensors.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {
namespace {

struct ReadResult {
  io::NamedTensors tensors;
  std::map<std::string, std::string> metadata;
};

Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString())
      throw std::invalid_argument("readSafetensors(path): path must be a string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto result = std::make_shared<ReadResult>();
    return PromiseWorker::Queue(
        env, Napi::Object(),
        [=] {
          io::SafetensorsFile f(path);
          result->metadata = f.header().metadata;
          for (const auto& e : f.header().tensors) result->tensors.emplace_back(e.name, f.tensor(e).clone());
        },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          Napi::Object tensors = Napi::Object::New(e);
          for (const auto& [name, t] : result->tensors) tensors.Set(name, tensor_to_js(e, t));
          Napi::Object meta = Napi::Object::New(e);
          for (const auto& [k, v] : result->metadata) meta.Set(k, v);
          out.Set("tensors", tensors);
          out.Set("metadata", meta);
          return out;
        });
  });
}

Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject())
      throw std::invalid_argument(
          "writeSafetensors(path, tensors, metadata?): path must be a string and tensors an object");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Object obj = info[1].As<Napi::Object>();
    io::NamedTensors tensors;
    Napi::Array keys = obj.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
      tensors.emplace_back(name, tensor_from_js(obj.Get(name), name));
    }
    std::map<std::string, std::string> meta;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object m = info[2].As<Napi::Object>();
      Napi::Array mk = m.GetPropertyNames();
      for (uint32_t i = 0; i < mk.Length(); ++i) {
        std::string k = mk.Get(i).As<Napi::String>().Utf8Value();
        Napi::Value v = m.Get(k);
        if (!v.IsString()) throw std::invalid_argument("writeSafetensors: metadata." + k + " must be a string");
        meta[k] = v.As<Napi::String>().Utf8Value();
      }
    }
    return PromiseWorker::Queue(
        env, Napi::Object(), [=] { io::write_safetensors(path, tensors, meta); }, nullptr);
  });
}

void Init(Napi::Env env, Napi::Object io) {
  io.Set("readSafetensors", Napi::Function::New(env, ReadSafetensors, "readSafetensors"));
  io.Set("writeSafetensors", Napi::Function::New(env, WriteSafetensors, "writeSafetensors"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(io, mentor_kd::Init);
