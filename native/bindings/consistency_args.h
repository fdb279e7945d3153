// JS → train::ConsistencyPairs: `{a: Int32Array positions, b: ..., weight: Float64Array}` as
// lib/train/mcc-kd.ts builds them (positions become int64, weights stay as given).
#pragma once
#include <napi.h>

#include <string>

#include "train/consistency.h"

namespace mentor_kd {

train::ConsistencyPairs consistency_pairs_from_js(const Napi::Value& v, const std::string& where);

}  // namespace mentor_kd
