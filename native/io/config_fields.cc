#include "io/config_fields.h"

#include <stdexcept>

namespace mentor_kd::io {

using json = nlohmann::json;

void config_fail(const std::string& source, const std::string& msg) { throw std::runtime_error(source + ": " + msg); }

json parse_config_object(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    config_fail(source, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) config_fail(source, "must be a JSON object");
  return j;
}

int64_t config_int(const json& j, const char* key, int64_t fallback, const std::string& source, int64_t min_value) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (!v.is_number_integer()) config_fail(source, std::string("field '") + key + "' must be an integer");
  int64_t x = v.get<int64_t>();
  if (x < min_value)
    config_fail(source, std::string("field '") + key + "' must be >= " + std::to_string(min_value) + ", got " +
                            std::to_string(x));
  return x;
}

double config_double(const json& j, const char* key, double fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) config_fail(source, std::string("field '") + key + "' must be a number");
  return j[key].get<double>();
}

bool config_bool(const json& j, const char* key, bool fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) config_fail(source, std::string("field '") + key + "' must be a boolean");
  return j[key].get<bool>();
}

int64_t config_checked_mul(int64_t a, int64_t b, const std::string& source, const std::string& what) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) config_fail(source, what + " overflows a 64-bit size");
  return out;
}

int64_t config_checked_add(int64_t a, int64_t b, const std::string& source, const std::string& what) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) config_fail(source, what + " overflows a 64-bit size");
  return out;
}

}  // namespace mentor_kd::io
