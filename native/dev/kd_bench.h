// Benchmark driver for the KD loss (scripts/bench/kd-loss.ts runs it, one
// variant per fresh process). Inputs are generated here so that N×V tensors
// never cross into JS.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mentor_kd {
namespace kd {

struct BenchOptions {
  int64_t rows = 8192, vocab = 32128;
  // fused | fused_inplace | unfused | topk | topk_unfused |
  // linear | linear_topk | linear_kd | linear_unfused
  std::string variant = "fused";
  at::ScalarType dtype = at::kFloat, mentor_dtype = at::kFloat;
  std::string device = "cpu";
  int iters = 3, warmup = 1;
  double tau = 0, lambda = 0;  // required from JS (dev.kdBench)
  std::string divergence;      // required from JS too
  double beta = 0.5, alpha = 0.1;
  int64_t hidden = 512, k = 64, chunk_rows = 0;
  uint64_t seed = 1234;
  double ignore_frac = 0.1;
};

struct BenchResult {
  std::vector<double> times_ms;
  double median_ms = 0;
  // Peak of memory allocated by tensors during one forward+backward, above
  // what was allocated before it (the inputs): CPU counting allocator, or the
  // CUDA caching allocator's peak allocated bytes.
  int64_t peak_extra_bytes = 0;
  int64_t input_bytes = 0;  // student + mentor (or hidden + weight + mentor side) + labels
  // CPU only: VmHWM − VmRSS around the timed iterations, after
  // `echo 5 > /proc/self/clear_refs` (-1 when unavailable).
  int64_t rss_peak_extra_bytes = -1;
  std::string memory_method;
  // Bytes the fused kernel must move at least (read the logits inputs once,
  // write the gradient once); 0 for variants where that is not meaningful.
  int64_t min_traffic_bytes = 0;
  double loss = 0;
  int threads = 0;
  std::string isa, device_name;
};

BenchResult run_bench(const BenchOptions& o);

}  // namespace kd
}  // namespace mentor_kd
