// Module init only: every binding registered itself into its namespace (napi/registry.h).
#include <napi.h>

#include "napi/errors.h"
#include "napi/registry.h"
#include "runtime/settings.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return mentor_kd::guard_js(env, [&] {
    // Until runtime.configure() says otherwise (lib/runtime/env.ts calls it at load).
    mentor_kd::runtime::set_flush_denormal(true);
    for (const auto& entry : mentor_kd::binding_registry()) {
      Napi::Value existing = exports.Get(entry.ns);
      Napi::Object ns = existing.IsObject() ? existing.As<Napi::Object>() : Napi::Object::New(env);
      if (!existing.IsObject()) exports.Set(entry.ns, ns);
      entry.init(env, ns);
    }
    return exports;
  });
}

NODE_API_MODULE(mentor_kd, Init)
