// Each binding file registers its exports with MENTOR_KD_BINDING(name, fn);
// addon.cc only walks the list. Adding a binding touches no other file, and a
// development build may leave any binding out.
#pragma once
#include <napi.h>

#include <vector>

namespace mentor_kd {

using BindingInit = void (*)(Napi::Env env, Napi::Object exports);

struct BindingEntry {
  const char* name;
  BindingInit init;
};

inline std::vector<BindingEntry>& binding_registry() {
  static std::vector<BindingEntry> entries;
  return entries;
}

struct BindingRegistrar {
  BindingRegistrar(const char* name, BindingInit init) { binding_registry().push_back({name, init}); }
};

}  // namespace mentor_kd

#define MENTOR_KD_BINDING(name, fn) \
  static ::mentor_kd::BindingRegistrar mentor_kd_binding_registrar_##name(#name, fn)
