// libFuzzer target: the safetensors header parser must reject any byte string
// with a std::runtime_error (never crash, hang, overflow or read out of bounds),
// and what it accepts must be self-consistent. Built by scripts/fuzz/run.sh.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>

#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = mentor_kd::io::parse_safetensors_header(data, size, "fuzz");
    // Invariants of an accepted header: contiguous, in bounds, sized by dtype x shape.
    // ... and no tensor name twice (JSON allows repeated keys; the parser must refuse them).
    std::set<std::string> names;
    uint64_t cursor = 0;
    for (const auto& t : h.tensors) {
      if (!names.insert(t.name).second) std::abort();
      if (t.begin != cursor || t.end < t.begin || h.data_start + t.end > size) std::abort();
      cursor = t.end;
    }
    if (h.data_start + cursor != size) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
