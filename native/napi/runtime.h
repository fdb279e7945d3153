// Process-wide runtime settings that must be re-applied on every worker thread.
//
// OpenMP keeps its thread count per thread (an ICV), and libuv's pool threads
// start with the OpenMP default (1 on a 2-core box), so at::set_num_threads on
// the JS thread alone would leave every AsyncWorker single-threaded.
//
// Denormals: the floating-point control register (MXCSR on x86) is per thread
// too. Training produces fp32 denormals (< 1.2e-38) as a matter of course: the
// softmax of a 32k vocabulary puts probabilities like e^-100 into the CE/KL
// gradient, and every GEMM of backward then reads them. Intel cores take a
// microcode assist per denormal operand: a flan-t5-small forward+backward went
// from 19 s to 3.3 s on a 2-vCPU Xeon with flush-to-zero/denormals-are-zero
// (torch.set_flush_denormal(True)'s setting). Values that small cannot change a
// loss or an update measurably, so it is on by default; MENTOR_KD_FLUSH_DENORMAL=0
// turns it off. Set on the JS thread at load and on each worker before its work,
// so the OpenMP/OpenBLAS threads each worker starts inherit it.
#pragma once
#include <atomic>

namespace mentor_kd {

void set_intra_op_threads(int n);  // 0 = leave libtorch's default
int intra_op_threads();
// Called at the start of every AsyncWorker::Execute.
void apply_thread_settings();
// Reads MENTOR_KD_FLUSH_DENORMAL (once) and applies the settings to the calling thread.
void init_runtime_settings();
// Whether denormals are flushed (false also where the CPU cannot).
bool flush_denormal();

}  // namespace mentor_kd
