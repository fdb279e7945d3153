// LoRA adapters on T5's linear layers (Hu et al. 2021), in Hugging Face PEFT's format.
//
// An adapted layer computes y = x W^T + (dropout(x) A^T B^T)·(lora_alpha / r) with W frozen,
// A [r, in] kaiming-uniform (a = √5, as PEFT: bound 1/√in) and B [out, r] zero, so an adapted
// model starts equal to its base. Targets are the T5 module names PEFT matches on: q, k, v, o of
// every self- and cross-attention (encoder and decoder), wi_0, wi_1 (gated FFN) or wi (relu), wo.
//
// The T5Model methods add_lora, load_lora, read_lora, save_lora, attach_lora and
// merge_lora_into are defined in lora.cc. A saved adapter directory is what PEFT's
// save_pretrained writes: adapter_config.json (peft_type LORA, task_type SEQ_2_SEQ_LM, r,
// lora_alpha, lora_dropout, target_modules, base_model_name_or_path, ...) and
// adapter_model.safetensors holding "base_model.model.<HF layer name>.lora_A.weight" / ".lora_B.weight".
#pragma once
#include <memory>
#include <string>

#include "t5/lora_config.h"
#include "t5/model.h"

namespace mentor_kd::t5 {

// Checks a LoRA config against a model's config; throws one line naming `field`.<the key>.
void validate_lora_config(const LoraConfig& lora, const T5Config& model, const std::string& field);

// adapter_config.json's text for `lora` over the base model at `base_model_name_or_path`.
std::string lora_adapter_config_json(const LoraConfig& lora, const std::string& base_model_name_or_path);
// Reads and checks an adapter_config.json (PEFT's LoRA fields; unsupported options refused by name).
LoraConfig read_lora_adapter_config(const std::string& path, std::string* base_model_name_or_path);

// Whether `dir` is a PEFT adapter directory (adapter_config.json and no model weights of its own).
bool is_lora_adapter_dir(const std::string& dir);
// Its base model (adapter_config.json's base_model_name_or_path; relative paths from `dir`)
// with the adapters merged in: a plain model, as merge-lora writes it.
std::shared_ptr<T5Model> load_lora_merged(const std::string& dir, at::Device device, at::ScalarType dtype,
                                          const LoadOptions& options);

// The PEFT key of a base weight's adapter half: "<prefix>encoder...q.weight" ->
// "base_model.model.encoder...q.lora_A.weight".
std::string lora_key(const std::string& base_weight_name, const char* half);

}  // namespace mentor_kd::t5
