#include "napi/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>

namespace mentor_kd {
namespace {
std::atomic<int> g_threads{0};
std::atomic<bool> g_flush_denormal{false};

bool flush_requested() {
  const char* v = std::getenv("MENTOR_KD_FLUSH_DENORMAL");
  return !(v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "off") == 0));
}
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
  if (g_flush_denormal.load(std::memory_order_relaxed)) at::globalContext().setFlushDenormal(true);
  int n = g_threads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

void init_runtime_settings() {
  static const bool supported = flush_requested() && at::globalContext().setFlushDenormal(true);
  g_flush_denormal.store(supported);
  apply_thread_settings();
}

bool flush_denormal() { return g_flush_denormal.load(); }

}  // namespace mentor_kd
