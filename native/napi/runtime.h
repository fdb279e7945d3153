// Process-wide runtime settings that must be re-applied on every worker thread.
//
// OpenMP keeps its thread count per thread (an ICV), and libuv's pool threads
// start with the OpenMP default (1 on a 2-core box), so at::set_num_threads on
// the JS thread alone would leave every AsyncWorker single-threaded.
#pragma once
#include <atomic>

namespace mentor_kd {

void set_intra_op_threads(int n);  // 0 = leave libtorch's default
int intra_op_threads();
// Called at the start of every AsyncWorker::Execute.
void apply_thread_settings();

}  // namespace mentor_kd
