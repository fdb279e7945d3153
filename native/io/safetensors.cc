#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
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

size_t element_size(const std::string& code) {
  if (code == "F64" || code == "I64" || code == "U64") return 8;
  if (code == "F32" || code == "I32" || code == "U32") return 4;
  if (code == "F16" || code == "BF16" || code == "I16" || code == "U16") return 2;
  if (code == "I8" || code == "U8" || code == "BOOL" || code == "F8_E4M3" || code == "F8_E5M2") return 1;
  return 0;
}

uint64_t parse_u64(const json& v, const std::string& source, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x >= 0) return static_cast<uint64_t>(x);
  }
  fail(source, what + " must be a non-negative integer");
}

}  // namespace

at::ScalarType scalar_type_from_safetensors(const std::string& code, const std::string& where) {
  if (code == "F32") return at::kFloat;
  if (code == "F16") return at::kHalf;
  if (code == "BF16") return at::kBFloat16;
  if (code == "F64") return at::kDouble;
  if (code == "I64") return at::kLong;
  if (code == "I32") return at::kInt;
  if (code == "I16") return at::kShort;
  if (code == "I8") return at::kChar;
  if (code == "U8") return at::kByte;
  if (code == "BOOL") return at::kBool;
  throw std::runtime_error(where + ": dtype " + code + " is not supported");
}

std::string safetensors_dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: throw std::runtime_error(std::string("safetensors: cannot store dtype ") + c10::toString(t));
  }
}

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& source) {
  if (size < 8) fail(source, "file is " + std::to_string(size) + " bytes, too short for a safetensors header (truncated?)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxHeaderBytes) fail(source, "header size " + std::to_string(n) + " exceeds the 100 MB limit (corrupt file?)");
  if (n > size - 8)
    fail(source, "header size " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
                     " bytes; truncated or corrupt)");
  const char* hdr = reinterpret_cast<const char*>(data + 8);
  json j;
  try {
    j = json::parse(hdr, hdr + n);
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
    size_t esize = element_size(e.dtype);
    if (esize == 0) fail(source, where + " has unknown dtype '" + e.dtype + "'");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      uint64_t dim = parse_u64(d, source, where + " shape entry");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(source, where + " shape entry too large");
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
                       c10::Join(", ", e.shape) + "] need " + std::to_string(numel * esize));
    out.tensors.push_back(std::move(e));
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& e : out.tensors) {
    if (e.begin < cursor) fail(source, "tensor '" + e.name + "' overlaps the previous tensor's bytes");
    if (e.begin > cursor) fail(source, "bytes " + std::to_string(cursor) + ".." + std::to_string(e.begin) + " before tensor '" + e.name + "' belong to no tensor");
    cursor = e.end;
  }
  if (cursor != data_size)
    fail(source, "data buffer has " + std::to_string(data_size - cursor) + " trailing bytes that belong to no tensor");
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat (" + std::strerror(errno) + ")");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      ::close(fd);
      throw std::runtime_error(path + ": cannot map (" + std::strerror(errno) + ")");
    }
  }
  ::close(fd);
  try {
    header_ = parse_safetensors_header(static_cast<const uint8_t*>(map_), size_, path);
  } catch (...) {
    if (map_) ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

at::Tensor SafetensorsFile::tensor(const TensorEntry& e) const {
  auto dtype = scalar_type_from_safetensors(e.dtype, path_ + ": tensor '" + e.name + "'");
  auto* base = static_cast<uint8_t*>(map_) + header_.data_start + e.begin;
  if (e.end == e.begin) return at::empty(e.shape, at::TensorOptions().dtype(dtype));
  // Offsets need not be aligned to the element size; from_blob on x86 and
  // ARM64 tolerates it, and callers copy out immediately.
  return at::from_blob(base, e.shape, at::TensorOptions().dtype(dtype));
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (header.contains(name)) throw std::runtime_error(path + ": duplicate tensor name '" + name + "'");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", safetensors_dtype_code(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(path + ": cannot write (" + std::strerror(errno) + ")");
    uint64_t n = h.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    f.write(len, 8);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& c : cpu) {
      if (c.numel()) f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
    }
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw std::runtime_error(path + ": write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename temp file into place (" + std::strerror(errno) + ")");
  }
}

}  // namespace mentor_kd::io
