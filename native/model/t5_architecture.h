// Whether a T5 checkpoint's config.json describes the model being trained.
#pragma once
#include <string>

#include "t5/config.h"

namespace mentor_kd::model {

// Why a checkpoint of config `checkpoint` cannot be loaded into a model of `current`
// architecture ("" when it can), naming every differing field.
std::string t5_architecture_mismatch(const t5::T5Config& checkpoint, const t5::T5Config& current);

}  // namespace mentor_kd::model
