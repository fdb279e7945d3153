// The safetensors header parser, on its own: plain C++ with no libtorch, so
// the fuzz target (native/fuzz) builds in seconds with clang + libFuzzer.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data buffer. Nothing is trusted: header length within the file,
// offsets inside the buffer, each tensor's byte size equal to numel * element
// size (overflow-checked), tensors neither overlapping nor leaving holes, the
// buffer fully covered — the rules of the reference Rust implementation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mentor_kd::io {

struct TensorEntry {
  std::string name;
  std::string dtype;  // safetensors code: F32, BF16, ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<TensorEntry> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + N
};

// Parses and validates the header of a safetensors image of `size` bytes.
// `source` names the file in error messages (std::runtime_error).
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& source);

// Bytes per element of a safetensors dtype code; 0 if unknown.
size_t safetensors_element_size(const std::string& code);

}  // namespace mentor_kd::io
