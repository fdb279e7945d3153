#include "generate/sampler.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "generate/counter_rng.h"

namespace mentor_kd::generate {
namespace {

int64_t argmax_row(const float* l, int64_t V) {
  // First maximum, as at::argmax; a NaN wins (as at::argmax treats it).
  int64_t best = 0;
  float bv = l[0];
  if (std::isnan(bv)) return 0;
  for (int64_t j = 1; j < V; ++j) {
    if (std::isnan(l[j])) return j;
    if (l[j] > bv) bv = l[j], best = j;
  }
  return best;
}

int64_t sample_row(const float* l, int64_t V, const RowSampling& r, std::vector<float>& s, std::vector<int64_t>& idx) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  s.resize(V);
  const float temp = static_cast<float>(r.temperature);
  for (int64_t j = 0; j < V; ++j) s[j] = l[j] / temp;
  if (r.top_k > 0 && r.top_k < V) {
    // HF TopKLogitsWarper: keep scores >= the k-th largest (ties kept).
    std::vector<float> copy(s);
    std::nth_element(copy.begin(), copy.begin() + (r.top_k - 1), copy.end(), std::greater<float>());
    const float kth = copy[r.top_k - 1];
    for (int64_t j = 0; j < V; ++j)
      if (s[j] < kth) s[j] = neg_inf;
  }
  if (r.top_p < 1.0) {
    // HF TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability <= 1 - top_p,
    // never the most likely one.
    idx.resize(V);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
    const float m = s[idx[V - 1]];
    double total = 0;
    for (int64_t j = 0; j < V; ++j) total += std::exp(static_cast<double>(s[j]) - m);
    double cum = 0;
    for (int64_t j = 0; j < V - 1; ++j) {
      cum += std::exp(static_cast<double>(s[idx[j]]) - m) / total;
      if (cum <= 1.0 - r.top_p)
        s[idx[j]] = neg_inf;
      else
        break;
    }
  }
  float m = neg_inf;
  for (int64_t j = 0; j < V; ++j) m = std::max(m, s[j]);
  double total = 0;
  for (int64_t j = 0; j < V; ++j) {
    const double e = s[j] == neg_inf ? 0.0 : std::exp(static_cast<double>(s[j] - m));
    s[j] = static_cast<float>(e);
    total += e;
  }
  const double target = counter_uniform(r.seed, r.sample, r.step) * total;
  double cum = 0;
  int64_t last = 0;
  for (int64_t j = 0; j < V; ++j) {
    if (s[j] <= 0) continue;
    last = j;
    cum += s[j];
    if (cum > target) return j;
  }
  return last;  // rounding: the last token with mass
}

// The draw from softmax(l / temperature) when no top-k / top-p filter applies: the exponentials come
// from one vectorised ATen softmax over all such rows; here only the cumulative scan.
int64_t draw_from_probs(const float* p, int64_t V, const RowSampling& r) {
  double total = 0;
  for (int64_t j = 0; j < V; ++j) total += p[j];
  const double target = counter_uniform(r.seed, r.sample, r.step) * total;
  double cum = 0;
  int64_t last = 0;
  for (int64_t j = 0; j < V; ++j) {
    if (p[j] <= 0) continue;
    last = j;
    cum += p[j];
    if (cum > target) return j;
  }
  return last;
}

bool plain(const RowSampling& r, int64_t V) { return r.do_sample && (r.top_k == 0 || r.top_k >= V) && r.top_p >= 1.0; }

}  // namespace

void sample_rows(const at::Tensor& logits, const std::vector<RowSampling>& rows, int64_t* out) {
  if (logits.scalar_type() != at::kFloat || !logits.is_contiguous() || logits.dim() != 2)
    throw std::logic_error("sample_rows: logits must be a contiguous [n, V] float32 tensor");
  const int64_t n = logits.size(0), V = logits.size(1);
  const float* base = logits.data_ptr<float>();
  // Rows sampled without filters: softmax(l / T) for all of them in one call.
  std::vector<int64_t> plain_rows;
  std::vector<float> temps;
  for (int64_t i = 0; i < n; ++i)
    if (plain(rows[i], V)) plain_rows.push_back(i), temps.push_back(static_cast<float>(rows[i].temperature));
  at::Tensor probs;
  std::vector<int64_t> plain_at(n, -1);
  if (!plain_rows.empty()) {
    const int64_t m = static_cast<int64_t>(plain_rows.size());
    at::Tensor sel = m == n ? logits : logits.index_select(0, at::tensor(plain_rows, at::kLong));
    at::Tensor t = at::from_blob(temps.data(), {m, 1}, at::kFloat);
    probs = at::softmax(sel / t, -1).contiguous();
    for (int64_t k = 0; k < m; ++k) plain_at[plain_rows[k]] = k;
  }
  const float* pbase = probs.defined() ? probs.data_ptr<float>() : nullptr;
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    std::vector<float> s;
    std::vector<int64_t> idx;
    for (int64_t i = b; i < e; ++i) {
      const float* l = base + i * V;
      if (!rows[i].do_sample)
        out[i] = argmax_row(l, V);
      else if (plain_at[i] >= 0)
        out[i] = draw_from_probs(pbase + plain_at[i] * V, V, rows[i]);
      else
        out[i] = sample_row(l, V, rows[i], s, idx);
    }
  });
}

}  // namespace mentor_kd::generate
