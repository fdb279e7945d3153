#include "io/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace mentor_kd::io {
namespace {

using json = nlohmann::json;

// The reference implementation caps the header at 100 MB; a larger value is
// corruption, not a model.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw std::runtime_error(source + ": " + msg);
}

uint64_t parse_u64(const json& v, const std::string& source, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x >= 0) return static_cast<uint64_t>(x);
  }
  fail(source, what + " must be a non-negative integer");
}

std::string join_dims(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out;
}

}  // namespace

size_t safetensors_element_size(const std::string& code) {
  if (code == "F64" || code == "I64" || code == "U64") return 8;
  if (code == "F32" || code == "I32" || code == "U32") return 4;
  if (code == "F16" || code == "BF16" || code == "I16" || code == "U16") return 2;
  if (code == "I8" || code == "U8" || code == "BOOL" || code == "F8_E4M3" || code == "F8_E5M2") return 1;
  return 0;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& source) {
  if (size < 8)
    fail(source, "file is " + std::to_string(size) + " bytes, too short for a safetensors header (truncated?)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxHeaderBytes)
    fail(source, "header size " + std::to_string(n) + " exceeds the 100 MB limit (corrupt file?)");
  if (n > size - 8)
    fail(source, "header size " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
                     " bytes; truncated or corrupt)");
  const char* hdr = reinterpret_cast<const char*>(data + 8);
  // JSON allows repeated keys and nlohmann keeps the last one silently: a second entry for a
  // tensor would shadow the first while its bytes stay in the buffer. Refuse repeats at any depth.
  std::vector<std::set<std::string>> open_objects;
  auto no_duplicate_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second) {
          const std::string key = parsed.get<std::string>();
          fail(source, depth <= 1 ? "header has a duplicate tensor key '" + key + "'"
                                  : "header has a duplicate key '" + key + "' inside an entry");
        }
        break;
      default: break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(hdr, hdr + n, no_duplicate_keys);
  } catch (const json::exception& e) {
    fail(source, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(source, "header must be a JSON object");

  SafetensorsHeader out;
  out.data_start = 8 + n;
  const uint64_t data_size = size - out.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(source, "__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(source, "__metadata__." + m.key() + " must be a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail(source, where + " must be an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(source, where + " has no string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(source, where + " has no 'shape' array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail(source, where + " needs 'data_offsets': [begin, end]");
    TensorEntry e;
    e.name = name;
    e.dtype = v["dtype"].get<std::string>();
    size_t esize = safetensors_element_size(e.dtype);
    if (esize == 0) fail(source, where + " has unknown dtype '" + e.dtype + "'");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      uint64_t dim = parse_u64(d, source, where + " shape entry");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(source, where + " shape entry too large");
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim) fail(source, where + " shape overflows");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    e.begin = parse_u64(v["data_offsets"][0], source, where + " data_offsets[0]");
    e.end = parse_u64(v["data_offsets"][1], source, where + " data_offsets[1]");
    if (e.begin > e.end) fail(source, where + " has data_offsets begin > end");
    if (e.end > data_size)
      fail(source, where + " ends at byte " + std::to_string(e.end) + " of a " + std::to_string(data_size) +
                       "-byte data buffer (truncated file?)");
    if (numel > std::numeric_limits<uint64_t>::max() / esize) fail(source, where + " byte size overflows");
    if (e.end - e.begin != numel * esize)
      fail(source, where + " has " + std::to_string(e.end - e.begin) + " bytes but dtype " + e.dtype + " and shape [" +
                       join_dims(e.shape) + "] need " + std::to_string(numel * esize));
    out.tensors.push_back(std::move(e));
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& e : out.tensors) {
    if (e.begin < cursor) fail(source, "tensor '" + e.name + "' overlaps the previous tensor's bytes");
    if (e.begin > cursor)
      fail(source, "bytes " + std::to_string(cursor) + ".." + std::to_string(e.begin) + " before tensor '" + e.name +
                       "' belong to no tensor");
    cursor = e.end;
  }
  if (cursor != data_size)
    fail(source, "data buffer has " + std::to_string(data_size - cursor) + " trailing bytes that belong to no tensor");
  return out;
}

}  // namespace mentor_kd::io
