// Whether a decoder-only checkpoint's config.json describes the model being trained.
#pragma once
#include <string>

#include "causal/config.h"

namespace mentor_kd::causal {

// Why a checkpoint of config `checkpoint` cannot be loaded into a model of `current`
// architecture ("" when it can), naming every differing field.
std::string architecture_mismatch(const CausalConfig& checkpoint, const CausalConfig& current);

}  // namespace mentor_kd::causal
