#include "runtime/settings.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <mutex>

namespace mentor_kd::runtime {
namespace {
std::atomic<int> g_threads{0};
std::atomic<bool> g_flush_denormal{false};
std::atomic<bool> g_cuda_row_cache{true};
std::mutex g_paths_mutex;
std::string g_train_profile, g_model_profile;
}  // namespace

void set_intra_op_threads(int n) {
  g_threads.store(n);
  if (n > 0) at::set_num_threads(n);
}

int intra_op_threads() {
  int n = g_threads.load();
  return n > 0 ? n : at::get_num_threads();
}

void apply_thread_settings() {
  // Before any parallel region of this thread, so the team it starts inherits the mode.
  at::globalContext().setFlushDenormal(g_flush_denormal.load(std::memory_order_relaxed));
  int n = g_threads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

bool set_flush_denormal(bool on) {
  const bool supported = at::globalContext().setFlushDenormal(on);
  g_flush_denormal.store(on && supported);
  if (!supported) at::globalContext().setFlushDenormal(false);
  apply_thread_settings();
  return on && supported;
}

bool flush_denormal() { return g_flush_denormal.load(); }

void set_train_profile_path(std::string path) {
  std::lock_guard<std::mutex> lock(g_paths_mutex);
  g_train_profile = std::move(path);
}
std::string train_profile_path() {
  std::lock_guard<std::mutex> lock(g_paths_mutex);
  return g_train_profile;
}
void set_model_profile_path(std::string path) {
  std::lock_guard<std::mutex> lock(g_paths_mutex);
  g_model_profile = std::move(path);
}
std::string model_profile_path() {
  std::lock_guard<std::mutex> lock(g_paths_mutex);
  return g_model_profile;
}

void set_cuda_row_cache(bool on) { g_cuda_row_cache.store(on); }
bool cuda_row_cache() { return g_cuda_row_cache.load(); }

}  // namespace mentor_kd::runtime
