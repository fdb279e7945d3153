// Per-environment addon state (Node may load the addon in several worker
// threads, each with its own env): the constructors that native code needs to
// create JS objects of its classes, e.g. when a load() Promise resolves.
#pragma once
#include <napi.h>

#include <string>
#include <unordered_map>

namespace mentor_kd {

struct AddonData {
  std::unordered_map<std::string, Napi::FunctionReference> constructors;
};

inline AddonData& addon_data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData<AddonData>(d);  // freed by node-addon-api at env teardown
  }
  return *d;
}

}  // namespace mentor_kd
