#include "t5/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <mutex>
#include <stdexcept>

namespace mentor_kd::t5 {
namespace {

// lowbias32 (Chris Wellons' integer hash): full avalanche on 32 bits, and
// 32-bit multiplies vectorise on AVX2.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

inline uint32_t mask_hash(uint32_t k0, uint32_t k1, uint64_t i) {
  return mix32(mix32(static_cast<uint32_t>(i) ^ k0) ^ k1 ^ static_cast<uint32_t>(i >> 32));
}

inline uint32_t threshold_for(double p) {
  // keep iff hash >= threshold, i.e. with probability 1 - p (to 2^-32).
  return static_cast<uint32_t>(p * 4294967296.0);
}

template <typename scalar_t>
__attribute__((target_clones("avx2", "default"))) void apply_mask(const scalar_t* in, scalar_t* out, int64_t begin,
                                                                  int64_t end, uint32_t k0, uint32_t k1,
                                                                  uint32_t threshold, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = mask_hash(k0, k1, static_cast<uint64_t>(i)) >= threshold;
    out[i] = keep ? static_cast<scalar_t>(static_cast<float>(in[i]) * scale) : static_cast<scalar_t>(0);
  }
}

at::Tensor masked_scale(const at::Tensor& x, uint64_t seed, double p) {
  at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint32_t threshold = threshold_for(p);
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  const int64_t n = in.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.scalar_type(), "fast_dropout", [&] {
    const scalar_t* src = in.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1 << 15,
                     [&](int64_t b, int64_t e) { apply_mask<scalar_t>(src, dst, b, e, k0, k1, threshold, scale); });
  });
  return out;
}

struct KeyedStream {
  bool active = false;
  uint64_t key = 0;
  uint64_t counter = 0;
};
thread_local KeyedStream t_stream;

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t next_seed() {
  if (t_stream.active) return splitmix64(t_stream.key + 0x9e3779b97f4a7c15ull * ++t_stream.counter);
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

struct FastDropoutFn : public torch::autograd::Function<FastDropoutFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double p) {
    const uint64_t seed = next_seed();
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["p"] = p;
    return masked_scale(x, seed, p);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const uint64_t seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    const double p = ctx->saved_data["p"].toDouble();
    // d(out)/d(x) is the same mask and scale: apply it to the incoming gradient.
    return {masked_scale(grad_out[0], seed, p), at::Tensor()};
  }
};

}  // namespace

DropoutStreamScope::DropoutStreamScope(uint64_t key) {
  if (t_stream.active) throw std::logic_error("DropoutStreamScope: already active on this thread");
  t_stream = {true, key, 0};
}

DropoutStreamScope::~DropoutStreamScope() { t_stream = {}; }

DropoutStreamPosition dropout_stream_position() { return {t_stream.active, t_stream.key, t_stream.counter}; }

DropoutStreamReplay::DropoutStreamReplay(const DropoutStreamPosition& at)
    : saved_{t_stream.active, t_stream.key, t_stream.counter} {
  t_stream = {at.active, at.key, at.counter};
}

DropoutStreamReplay::~DropoutStreamReplay() { t_stream = {saved_.active, saved_.key, saved_.counter}; }

uint64_t mix_dropout_key(uint64_t base, uint64_t index) { return splitmix64(base ^ splitmix64(index)); }

bool dropout_keeps(uint64_t seed, int64_t index, double p) {
  return mask_hash(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint64_t>(index)) >=
         threshold_for(p);
}

at::Tensor fast_dropout(const at::Tensor& x, double p, bool train) {
  if (!train || p <= 0.0) return x;
  if (p >= 1.0) return x * 0;
  if (!x.device().is_cpu()) return at::dropout(x, p, train);
  return FastDropoutFn::apply(x, p);
}

}  // namespace mentor_kd::t5
