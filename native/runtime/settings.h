// Process-wide runtime settings. Native code reads no environment variable:
// lib/runtime/env.ts reads them and hands the values over through
// runtime.configure() (bindings/runtime_binding.cc) right after the addon loads.
//
// Threads. OpenMP keeps its thread count per thread (an ICV), and libuv's pool
// threads start with the OpenMP default (1 on a 2-core box), so
// at::set_num_threads on the JS thread alone would leave every AsyncWorker
// single-threaded: apply_thread_settings() re-applies it on each worker.
//
// Denormals: the floating-point control register (MXCSR on x86) is per thread
// too. Training produces fp32 denormals (< 1.2e-38) as a matter of course: the
// softmax of a 32k vocabulary puts probabilities like e^-100 into the CE/KL
// gradient, and every GEMM of backward then reads them. Intel cores take a
// microcode assist per denormal operand: a flan-t5-small forward+backward went
// from 19 s to 3.3 s on a 2-vCPU Xeon with flush-to-zero/denormals-are-zero
// (torch.set_flush_denormal(True)'s setting). Values that small cannot change a
// loss or an update measurably, so it is on until configure() says otherwise
// (MENTOR_KD_FLUSH_DENORMAL=0). Set on the JS thread and on each worker before
// its work, so the OpenMP/OpenBLAS threads each worker starts inherit it.
#pragma once
#include <string>

namespace mentor_kd::runtime {

void set_intra_op_threads(int n);  // 0 = leave libtorch's default
int intra_op_threads();
// Called at the start of every AsyncWorker::Execute.
void apply_thread_settings();

// Asks for flush-to-zero on every native thread; returns whether the CPU can.
bool set_flush_denormal(bool on);
// Whether denormals are flushed (false also where the CPU cannot).
bool flush_denormal();

// chrome://tracing profile destinations ("" = off): each train step
// (MENTOR_KD_TRAIN_PROFILE) and each model forward call (MENTOR_KD_PROFILE).
void set_train_profile_path(std::string path);
std::string train_profile_path();
void set_model_profile_path(std::string path);
std::string model_profile_path();

// CUDA KD kernels: keep a row in shared memory when it fits (MENTOR_KD_CUDA_ROW_CACHE=0 turns it off).
void set_cuda_row_cache(bool on);
bool cuda_row_cache();

}  // namespace mentor_kd::runtime
