#include "generate/decode_attention.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace mentor_kd::generate {
namespace {

inline float to_f(float x) { return x; }
inline float to_f(c10::BFloat16 x) { return static_cast<float>(x); }

template <typename T>
__attribute__((target_clones("avx2", "default"))) void attend_one(const T* q, const T* k, const T* v, int64_t len,
                                                                  int64_t dk, float divisor, const float* bias,
                                                                  float* scores, float* acc, T* out) {
  float qf[256];
  for (int64_t j = 0; j < dk; ++j) qf[j] = to_f(q[j]);
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < len; ++t) {
    const T* kt = k + t * dk;
    float s = 0;
    for (int64_t j = 0; j < dk; ++j) s += qf[j] * to_f(kt[j]);
    if (divisor != 1.0f) s /= divisor;
    if (bias) s += bias[len - 1 - t];
    scores[t] = s;
    m = std::max(m, s);
  }
  float sum = 0;
  for (int64_t t = 0; t < len; ++t) {
    const float e = std::exp(scores[t] - m);
    scores[t] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < dk; ++j) acc[j] = 0;
  for (int64_t t = 0; t < len; ++t) {
    const float w = scores[t] * inv;
    const T* vt = v + t * dk;
    for (int64_t j = 0; j < dk; ++j) acc[j] += w * to_f(vt[j]);
  }
  for (int64_t j = 0; j < dk; ++j) out[j] = static_cast<T>(acc[j]);
}

template <typename T>
void attend_typed(const AttendRows& a, T* out) {
  const int64_t n = static_cast<int64_t>(a.lengths.size()), H = a.heads, dk = a.d_kv;
  int64_t max_len = 1;
  for (int64_t len : a.lengths) max_len = std::max(max_len, len);
  const T* q = static_cast<const T*>(a.q);
  at::parallel_for(0, n * H, 4, [&](int64_t b, int64_t e) {
    std::vector<float> scores(max_len), acc(dk);
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = r / H, h = r % H;
      const int64_t g = h / a.kv_group;
      const T* k = static_cast<const T*>(a.k[i]) + g * a.head_stride[i];
      const T* v = static_cast<const T*>(a.v[i]) + g * a.head_stride[i];
      const float* bias = a.bias ? a.bias + h * a.bias_stride : nullptr;
      attend_one<T>(q + i * a.q_stride + h * dk, k, v, a.lengths[i], dk, a.divisor, bias, scores.data(), acc.data(),
                    out + i * H * dk + h * dk);
    }
  });
}

}  // namespace

void attend_rows(const AttendRows& a, at::ScalarType dtype, void* out) {
  if (a.d_kv > 256) throw std::invalid_argument("the generation engine supports d_kv <= 256");
  if (dtype == at::kFloat)
    attend_typed<float>(a, static_cast<float*>(out));
  else if (dtype == at::kBFloat16)
    attend_typed<c10::BFloat16>(a, static_cast<c10::BFloat16*>(out));
  else
    throw std::invalid_argument("the generation engine runs in float32 or bfloat16");
}

}  // namespace mentor_kd::generate
