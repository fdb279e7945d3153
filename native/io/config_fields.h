// Typed, bounded reads of an HF config.json's fields, shared by every model family's config
// parser: each error names the file (`source`) and the field; size arithmetic refuses overflow.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace mentor_kd::io {

[[noreturn]] void config_fail(const std::string& source, const std::string& msg);

// The text as a JSON object (anything else is an error naming `source`).
nlohmann::json parse_config_object(const std::string& text, const std::string& source);

// A missing or null field gives `fallback`; a present one must have the type (and bound).
int64_t config_int(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& source,
                   int64_t min_value);
double config_double(const nlohmann::json& j, const char* key, double fallback, const std::string& source);
bool config_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& source);

// a*b and a+b, or an error naming `what` when they overflow int64.
int64_t config_checked_mul(int64_t a, int64_t b, const std::string& source, const std::string& what);
int64_t config_checked_add(int64_t a, int64_t b, const std::string& source, const std::string& what);

}  // namespace mentor_kd::io
