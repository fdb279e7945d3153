#include "napi/runtime.h"

#include <ATen/Parallel.h>

namespace mentor_kd {
namespace {
std::atomic<int> g_threads{0};
}

void set_intra_op_threads(int n) {
  g_threads.store(n);
  if (n > 0) at::set_num_threads(n);
}

int intra_op_threads() {
  int n = g_threads.load();
  return n > 0 ? n : at::get_num_threads();
}

void apply_thread_settings() {
  int n = g_threads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

}  // namespace mentor_kd
