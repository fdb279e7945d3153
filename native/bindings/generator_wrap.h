// JS class model.Generator: the continuous-batching generation engine (native/generate/engine.h) over a
// T5Model or a CausalLM. create() builds it (the bf16 copy of the weights, if asked, off the JS
// thread); submit() queues requests (validation only, on the JS thread); run() steps the engine on a
// pool thread until at least one request finishes and resolves with those results, so
// lib/model/generate-stream.ts can yield each result as soon as it exists without ever blocking the
// event loop.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>

#include "generate/engine.h"
#include "model/language_model.h"

namespace mentor_kd {

class GeneratorWrap : public Napi::ObjectWrap<GeneratorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit GeneratorWrap(const Napi::CallbackInfo& info);

  struct Holder {
    std::shared_ptr<model::LanguageModel> model;  // the caller's model (its mutex serialises runs with training)
    std::shared_ptr<generate::GenerationEngine> engine;
    std::shared_ptr<std::mutex> run_mutex;
  };

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  // The rate of one [m, k] x [k, n] GEMM in GFLOP/s (the bench's GEMM-bound reference).
  static Napi::Value MeasureGemm(const Napi::CallbackInfo& info);
  Napi::Value Submit(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  Holder holder(Napi::Env env) const;
  Holder holder_;
};

}  // namespace mentor_kd
