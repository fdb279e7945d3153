#include "train/fast_dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/ops/bernoulli_native.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdint>
#include <memory>

namespace mentor_kd::train {
namespace {

thread_local bool tls_fast_dropout = false;

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

at::Tensor& bernoulli_float_(at::Tensor& self, double p, c10::optional<at::Generator> gen) {
  const bool fast = tls_fast_dropout && self.scalar_type() == at::kFloat && self.is_contiguous() &&
                    !(gen.has_value() && gen->defined()) && p >= 0 && p <= 1 && self.numel() > 0;
  if (!fast) return at::native::bernoulli_(self, p, gen);
  uint64_t seed;
  {
    at::Generator g = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(g.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(g)->random64();
  }
  // keep iff u < p·2^32, u a 32-bit uniform; two per hash.
  const uint64_t threshold = static_cast<uint64_t>(p * 4294967296.0);
  float* out = self.data_ptr<float>();
  const int64_t n = self.numel();
  const int64_t pairs = (n + 1) / 2;
  at::parallel_for(0, pairs, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t h = splitmix64(seed + static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ull);
      const int64_t j = 2 * i;
      out[j] = (h & 0xFFFFFFFFull) < threshold ? 1.0f : 0.0f;
      if (j + 1 < n) out[j + 1] = (h >> 32) < threshold ? 1.0f : 0.0f;
    }
  });
  return self;
}

class QuietWarnings : public c10::WarningHandler {
 public:
  void process(const c10::SourceLocation&, const std::string&, const bool) override {}
};

// Registered once when the addon loads, before any work runs: replacing a
// kernel while other threads dispatch is not safe. Registering over the stock
// CPU kernel makes libtorch print a warning, which is expected here.
struct Registration {
  std::unique_ptr<torch::Library> lib;
  bool ok = false;
  Registration() {
    QuietWarnings quiet;
    c10::Warning::WarningHandlerGuard guard(&quiet);
    try {
      lib = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__, __LINE__);
      lib->impl("bernoulli_.float", TORCH_FN(bernoulli_float_));
      ok = true;
    } catch (...) {
      lib.reset();
    }
  }
};

Registration& registration() {
  static Registration r;
  return r;
}
const bool registered_at_load = registration().ok;

}  // namespace

FastDropoutScope::FastDropoutScope(bool enable) : prev_(tls_fast_dropout) { tls_fast_dropout = enable && registration().ok; }
FastDropoutScope::~FastDropoutScope() { tls_fast_dropout = prev_; }

bool fast_dropout_available() { return registered_at_load && registration().ok; }

}  // namespace mentor_kd::train
