// The parameter set of a Llama / Qwen2 causal LM under HF's names, in HF's named_parameters()
// order, with the shape config.json implies for each: what a checkpoint must hold, no more.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "causal/config.h"

namespace mentor_kd::causal {

std::string layer_prefix(int64_t layer);  // "model.layers.{layer}."

// Tensor names a checkpoint of this config holds (a tied lm_head is not one of them).
std::vector<std::string> expected_parameter_names(const CausalConfig& config);
std::vector<int64_t> expected_shape(const std::string& name, const CausalConfig& config);
// The config fields a parameter's shape comes from, for shape-mismatch messages.
std::string shape_fields(const std::string& name, const CausalConfig& config);

// Names a checkpoint may carry besides the parameters: rotary inv_freq buffers (older Llama
// checkpoints saved them; HF ignores them on load) and a tied lm_head copy.
bool is_ignorable_extra(const std::string& name, const CausalConfig& config);

// Adds the layer index of a "model.layers.N." name to `out` (other names: nothing).
void collect_layer_index(const std::string& name, std::set<int64_t>& out);

}  // namespace mentor_kd::causal
