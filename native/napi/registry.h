// Each binding file registers its exports with MENTOR_KD_BINDING(ns, fn): fn
// fills exports[ns] (created on first use), so the addon's surface is a set of
// namespaces (runtime, model, kd, train, parallel, io; dev in the dev addon).
// addon.cc only walks the list. Adding a binding touches no other file.
#pragma once
#include <napi.h>

#include <vector>

namespace mentor_kd {

using BindingInit = void (*)(Napi::Env env, Napi::Object ns);

struct BindingEntry {
  const char* ns;
  BindingInit init;
};

inline std::vector<BindingEntry>& binding_registry() {
  static std::vector<BindingEntry> entries;
  return entries;
}

struct BindingRegistrar {
  BindingRegistrar(const char* ns, BindingInit init) { binding_registry().push_back({ns, init}); }
};

}  // namespace mentor_kd

// One registration per namespace per source file.
#define MENTOR_KD_BINDING(ns, fn) static ::mentor_kd::BindingRegistrar mentor_kd_binding_registrar_##ns(#ns, fn)
