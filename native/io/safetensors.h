// safetensors reader and writer (https://github.com/huggingface/safetensors).
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data buffer. The reader trusts nothing: header length within the
// file, offsets inside the buffer, each tensor's byte size equal to
// numel * element size (overflow-checked), tensors neither overlapping nor
// leaving holes, and the buffer fully covered — the rules the reference Rust
// implementation enforces. Errors name the file and the tensor.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors_header.h"

namespace mentor_kd::io {

at::ScalarType scalar_type_from_safetensors(const std::string& code, const std::string& where);
std::string safetensors_dtype_code(at::ScalarType t);

// A read-only memory map of a whole safetensors file plus its parsed header.
// Tensors returned by tensor() are views into the map: clone or convert them
// before the SafetensorsFile goes away.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  at::Tensor tensor(const TensorEntry& entry) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes tensors (any device/dtype; written as they are) to `path` atomically
// (a temp file renamed into place). The header is padded to 8 bytes as HF does.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace mentor_kd::io
