// Module init only: every binding registered itself (napi/registry.h).
#include <napi.h>

#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/runtime.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return mentor_kd::guard_js(env, [&] {
    mentor_kd::init_runtime_settings();
    Napi::Array names = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& entry : mentor_kd::binding_registry()) {
      entry.init(env, exports);
      names.Set(i++, Napi::String::New(env, entry.name));
    }
    exports.Set("bindings", names);
    return exports;
  });
}

NODE_API_MODULE(mentor_kd, Init)
