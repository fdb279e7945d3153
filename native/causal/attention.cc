#include "causal/attention.h"

#include <algorithm>
#include <cmath>

namespace mentor_kd::causal {
namespace {

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// [B, Hkv, S, d] -> [B, Hkv * n_rep, S, d], each KV head repeated for its query heads.
at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t B = x.size(0), Hkv = x.size(1), S = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({B, Hkv, n_rep, S, d}).reshape({B, Hkv * n_rep, S, d});
}

void append(KvCacheLayer& cache, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = k.size(2), need = cache.length + T;
  const int64_t capacity = cache.k.defined() ? cache.k.size(2) : 0;
  if (need > capacity) {
    const int64_t next = std::max<int64_t>({need, 2 * capacity, 16});
    at::Tensor nk = at::empty({k.size(0), k.size(1), next, k.size(3)}, k.options());
    at::Tensor nv = at::empty({v.size(0), v.size(1), next, v.size(3)}, v.options());
    if (cache.length > 0) {
      nk.narrow(2, 0, cache.length).copy_(cache.k.narrow(2, 0, cache.length));
      nv.narrow(2, 0, cache.length).copy_(cache.v.narrow(2, 0, cache.length));
    }
    cache.k = nk;
    cache.v = nv;
  }
  cache.k.narrow(2, cache.length, T).copy_(k);
  cache.v.narrow(2, cache.length, T).copy_(v);
  cache.length = need;
}

}  // namespace

at::Tensor self_attention(const CausalConfig& c, const at::Tensor& x, const AttentionWeights& w,
                          const RotaryTables& rope, const at::Tensor& mask_bias, KvCacheLayer* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, d = c.head_dim();
  at::Tensor q = project(x, w.q, w.q_bias).view({B, T, H, d}).transpose(1, 2);
  at::Tensor k = project(x, w.k, w.k_bias).view({B, T, Hkv, d}).transpose(1, 2);
  at::Tensor v = project(x, w.v, w.v_bias).view({B, T, Hkv, d}).transpose(1, 2);
  q = apply_rotary(q, rope);
  k = apply_rotary(k, rope);
  if (cache) {
    append(*cache, k, v);
    k = cache->k.narrow(2, 0, cache->length);
    v = cache->v.narrow(2, 0, cache->length);
  }
  k = repeat_kv(k, H / Hkv);
  v = repeat_kv(v, H / Hkv);
  at::Tensor scores = at::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(d));
  scores = scores + mask_bias;
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor out = at::matmul(probs, v).transpose(1, 2).reshape({B, T, H * d});
  return project(out, w.o, w.o_bias);
}

}  // namespace mentor_kd::causal
