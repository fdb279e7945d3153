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

#include "io/text_file.h"

namespace mentor_kd::io {
namespace {
using json = nlohmann::json;
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

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // Regular files only: a FIFO or device would block the open or the read, or has no size to map.
  uint64_t size = 0;
  int fd = open_regular_file(path, &size);
  size_ = static_cast<size_t>(size);
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
      if (c.numel())
        f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
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
