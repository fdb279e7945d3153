// Small text files (config.json, index files): read whole, write atomically (temp file + rename,
// so a crash never leaves a half-written file where a reader expects a whole one).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace mentor_kd::io {

// Opens `path` for reading only if it is a regular file: the open never blocks (O_NONBLOCK, so a
// FIFO is refused rather than waited on) and the type is checked on the opened descriptor (fstat),
// so a path swapped after a stat cannot slip through. Returns the descriptor and the size; throws
// a std::runtime_error naming the path otherwise. The caller closes the descriptor.
int open_regular_file(const std::string& path, uint64_t* size);

// Reads a whole regular file (see open_regular_file) of at most max_bytes.
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes = 64ull << 20);
void write_text_file_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace mentor_kd::io
