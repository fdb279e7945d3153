// Small text files (config.json, index files): read whole, write atomically (temp file + rename,
// so a crash never leaves a half-written file where a reader expects a whole one).
#pragma once
#include <filesystem>
#include <string>

namespace mentor_kd::io {

std::string read_text_file(const std::filesystem::path& path);
void write_text_file_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace mentor_kd::io
