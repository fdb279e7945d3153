// CPU kernels of the fused KD loss (kd_rows, kd_topk_rows; see kd_common.h).
//
// What is fused, and why it is legal. Per row the unfused composition makes
// log_softmax(s), log_softmax(s/τ), softmax(m/τ), their KL product and, in
// backward, as many N×V gradients again. All of them are functions of a few
// per-row scalars — the maxima Ms, Mm and the normalisers
//   Z1 = Σ e^(s−Ms),  Zt = Σ e^((s−Ms)/τ),  Zq = Σ e^((m−Mm)/τ)
// plus the KL numerator A = Σ e^((m−Mm)/τ)·((m−Mm)−(s−Ms))/τ, which gives
//   CE = Ms + log Z1 − s_y,     KL = A/Zq − log Zq + log Zt.
// These sums are accumulated online (running max, rescaling what was summed so
// far when it grows: llm.c's fused classifier, Milakov & Gimelshein 2018) in
// one read of the row, block by block; max(s/τ) = max(s)/τ for τ > 0, so one
// student max serves both temperatures. Since the loss is a scalar, its
// upstream gradient is known up to a factor, so the second sweep writes
//   dL/ds = ce_scale·(p − onehot(y)) + kl_scale·(p_τ − q)/τ
// directly, while the row is still in L2 (a 32k-vocab row is 128 KiB). No N×V
// temporary exists; backward multiplies by the upstream scalar. Sums are fp32
// within a block and double across blocks.
//
// The other divergences (issue 14). Write p = p_τ, z = s/τ; for any D(p, q)
// with p = softmax(z), the chain rule through the softmax gives
//   ∂D/∂z_j = p_j (h_j − S),  h_j = ∂D/∂p_j,  S = Σ_k p_k h_k,
// and ∂/∂s = (1/τ) ∂/∂z. Constants added to h cancel (Σ p = 1), so h is kept
// without them. With δ = log p − log q:
//   reverse-kl      D = Σ p δ;                         h = δ              (S = D)
//   jsd(β)          u = log(M/p) = log((1−β) + β e^(−δ)),  log(M/q) = u + δ,
//                   D = −β Σ q (u + δ) − (1−β) Σ p u;   h = −(1−β) u
//                   (∂/∂p_j of β q log(q/M) + (1−β) p log(p/M) is
//                   (1−β)[log(p/M) + 1 − M/M]: the q-part's −β(1−β)q/M cancels)
//   skew-kl(α)      w = log(r/q) = log(α + (1−α) e^δ),   r = αq + (1−α)p,
//                   D = −Σ q w;                         h = −(1−α) q/r = −(1−α) e^(−w)
//   skew-reverse(α) w = log(r'/p) = log(α + (1−α) e^(−δ)), r' = αp + (1−α)q,
//                   D = −Σ p w;                         h = −w − α p/r' = −w − α e^(−w)
//   tvd             D = ½ Σ |q − p|;                    h = ½ sign(p − q)  (0 at p = q)
// The SIMD kernels take each mixture's log relative to mx = max(p, q): e.g. for JSD, L = log(M/mx) with
// M = βq + (1−β)p, and u = L when p ≥ q, else L − δ (mx = q, log(q/p) = −δ) — one reciprocal of mx (the ISA's
// estimate + a Newton step, not a divide) and one log per element, no exp, the log's argument in [min(c, 1−c), 1] so
// every term is finite for β, α ∈ (0,1) (the host sends the ends as forward/reverse KL). The log is a 16-entry table
// plus a degree-4 series on AVX-512/AVX2 (vlog_fast in kd_cpu_simd.inc: ~half the instructions of a Cephes log, its
// absolute error ≤ 1 ulp of |log| + 6e-9, which is what the probability-weighted sums see). δ comes from the logits'
// differences, exact where an exp underflows (a −1e4 mask); where p or q underflows M/mx may be off, but such a term
// is weighted by an underflowed probability. (The float64 and top-k paths use logaddexp in double.) Pass
// structure: D and S need the normalisers Zt, Zq, which are known only after the whole row is read. So the row is read
// once (pass 1, the online sums above, also storing δ's per-block part d = ((s−Ms)−(m−Mm))/τ beside the exponentials,
// in the per-thread row buffers), then swept twice in L2: sweep 2 turns (et, eq, d) into the D-terms and p·h (summed)
// and h (stored over d), sweep 3 writes dL/ds = ce_scale·(p − onehot) + (kl_scale/τ)·p_τ·(h − S). Each block's stored
// values are relative to that block's running maxima, so each sweep rescales by exp((M_block − M)/τ) per block, as
// forward KL does. The inputs are read once and the gradient written once (as forward KL); the extra work is one
// reciprocal and one log per element (jsd, skews), the extra memory one more V-float row buffer per thread. Top-k: the
// same formulas on the k+1 events (the top-k tokens and the rest bucket, whose h applies to every token outside K) in
// double, then one sweep writing c1·e1 + ct·et with ct = (kl_scale/τ)(h_rest − S)/Zt and the k entries fixed up.
//
// Vectorised with GCC vector extensions compiled for AVX-512, AVX2 and SSE2
// (kd_cpu_simd.inc, picked at run time); parallel over rows with
// at::parallel_for. float64 inputs (gradcheck) take a scalar double path.
#include <immintrin.h>
#include <torch/library.h>
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>

#include "kd/kd_common.h"
#include "kd/kd_loss.h"

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace mentor_kd {
namespace kd {

// Block kernels of one instruction set (kd_cpu_simd.inc).
struct SimdKernels {
  const char* name;
  void (*max2)(const float* s, const float* m, int64_t n, float* ms, float* mm, float* fin_s, float* fin_m);
  void (*max1)(const float* s, int64_t n, float* ms, float* fin_s);
  void (*stats_full)(const float* s, const float* m, int64_t n, float Ms, float Mm, float inv_tau, int tp, float* out,
                     float* et, float* eq, float* e1, float* d);
  void (*grad_full)(const float* et, const float* eq, const float* e1, int64_t n, int tp, float c1, float ct, float cq,
                    float* g);
  void (*stats_student)(const float* s, int64_t n, float Ms, float inv_tau, int tp, float* out, float* et, float* e1);
  void (*grad_student)(const float* et, const float* e1, int64_t n, int tp, float c1, float ct, float* g);
  void (*div_sums)(int div, const float* et, const float* eq, float* d, int64_t n, float cp, float cq, float dc,
                   float c, float lc, float l1c, float* out);
  void (*grad_div)(const float* et, const float* e1, const float* h, int64_t n, int tp, float c1, float ck, float S,
                   float* g);
  void (*bf16_to_f32)(const uint16_t* src, float* dst, int64_t n);
  void (*f32_to_bf16)(const float* src, uint16_t* dst, int64_t n);
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t n);
  void (*f32_to_f16)(const float* src, uint16_t* dst, int64_t n);
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
namespace isa_avx512 {
#define KD_VBYTES 64
#define KD_ISA_NAME "avx512"
#include "kd/kd_cpu_simd.inc"
#undef KD_VBYTES
#undef KD_ISA_NAME
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace isa_avx2 {
#define KD_VBYTES 32
#define KD_ISA_NAME "avx2"
#include "kd/kd_cpu_simd.inc"
#undef KD_VBYTES
#undef KD_ISA_NAME
}  // namespace isa_avx2
#pragma GCC pop_options

namespace isa_sse2 {
#define KD_VBYTES 16
#define KD_ISA_NAME "sse2"
#include "kd/kd_cpu_simd.inc"
#undef KD_VBYTES
#undef KD_ISA_NAME
}  // namespace isa_sse2

namespace {

const SimdKernels* detect_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
    return &isa_avx512::kKernels;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &isa_avx2::kKernels;
  return &isa_sse2::kKernels;
}

const SimdKernels* isa_by_name(const std::string& name) {
  const SimdKernels* best = detect_isa();
  if (name.empty() || name == "auto") return best;
  const SimdKernels* want = name == "avx512" ? &isa_avx512::kKernels
                            : name == "avx2" ? &isa_avx2::kKernels
                            : name == "sse2" ? &isa_sse2::kKernels
                                             : nullptr;
  TORCH_CHECK(want, "kd_loss: unknown CPU kernel set '", name, "' (expected auto, avx512, avx2 or sse2)");
  // Never run instructions the CPU lacks.
  int rank_best = best == &isa_avx512::kKernels ? 2 : best == &isa_avx2::kKernels ? 1 : 0;
  int rank_want = want == &isa_avx512::kKernels ? 2 : want == &isa_avx2::kKernels ? 1 : 0;
  TORCH_CHECK(rank_want <= rank_best, "kd_loss: this CPU does not support the '", name, "' kernels (best: ", best->name,
              ")");
  return want;
}

std::atomic<const SimdKernels*>& current_isa() {
  // Detected from the CPU; runtime.configure({kdIsa}) (MENTOR_KD_KD_ISA) or set_cpu_isa override it.
  static std::atomic<const SimdKernels*> isa{detect_isa()};
  return isa;
}

constexpr int64_t kBlock = 2048;  // floats per block: s, m and a grad buffer stay in L1

struct RowParams {
  int64_t V;
  double tau, inv_tau;
  int tp;  // 1, 2, 4: e^(x) is a power of e^(x/τ); 0: general τ
  double ce_scale, kl_scale;
  bool kl_all_rows;
  int64_t ignore_index;
  int div;      // KernelDiv
  double coef;  // β or α ∈ (0,1) for jsd / the skews
};

int tau_mode(double tau) { return tau == 1.0 ? 1 : tau == 2.0 ? 2 : tau == 4.0 ? 4 : 0; }

// A fresh N×V gradient is first touched by the kernel; with 4 KiB pages that
// is one page fault per 4 KiB (measured: about half the time of the op on a
// VM). Ask for transparent huge pages on it (a hint; ignored where THP is off).
void hint_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + static_cast<uintptr_t>(t.numel() * t.element_size());
  const uintptr_t b = (begin + kHuge - 1) & ~(kHuge - 1), e = end & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#endif
}

// Block load/store with dtype conversion; fp32 blocks are used in place.
template <class T>
struct Io;
template <>
struct Io<float> {
  static const float* load(const SimdKernels&, const float* p, int64_t, float*) { return p; }
  static void store(const SimdKernels&, const float* src, float* dst, int64_t n) {
    if (src != dst) std::memcpy(dst, src, n * sizeof(float));
  }
  static float get(const float* p) { return *p; }
  static void put(float* p, float v) { *p = v; }
};
template <>
struct Io<c10::BFloat16> {
  static const float* load(const SimdKernels& K, const c10::BFloat16* p, int64_t n, float* buf) {
    K.bf16_to_f32(reinterpret_cast<const uint16_t*>(p), buf, n);
    return buf;
  }
  static void store(const SimdKernels& K, const float* src, c10::BFloat16* dst, int64_t n) {
    K.f32_to_bf16(src, reinterpret_cast<uint16_t*>(dst), n);
  }
  static float get(const c10::BFloat16* p) { return static_cast<float>(*p); }
  static void put(c10::BFloat16* p, float v) { *p = c10::BFloat16(v); }
};
template <>
struct Io<c10::Half> {
  static const float* load(const SimdKernels& K, const c10::Half* p, int64_t n, float* buf) {
    K.f16_to_f32(reinterpret_cast<const uint16_t*>(p), buf, n);
    return buf;
  }
  static void store(const SimdKernels& K, const float* src, c10::Half* dst, int64_t n) {
    K.f32_to_f16(src, reinterpret_cast<uint16_t*>(dst), n);
  }
  static float get(const c10::Half* p) { return static_cast<float>(*p); }
  static void put(c10::Half* p, float v) { *p = c10::Half(v); }
};

// Per-thread buffers. et/eq/e1 hold one row's exponentials between the two
// sweeps (3 × V floats: L2-resident for a 32k vocabulary).
struct Scratch {
  std::vector<float> s, m, g;
  std::vector<float> et, eq, e1, d;       // d: δ's block part, then h (divergences other than forward KL)
  std::vector<float> block_ms, block_mm;  // running maxima each block's exps were taken against
  std::vector<uint64_t> bitmap;           // top-k membership, V bits
  std::vector<double> topk_s;             // student logits at the top-k tokens (saved before an in-place write)
  std::vector<double> topk_h;             // h at the top-k tokens (divergences other than forward KL)
  Scratch() : s(kBlock), m(kBlock), g(kBlock) {}
  void reserve_row(int64_t V) {
    if (static_cast<int64_t>(et.size()) < V) {
      et.resize(V);
      eq.resize(V);
      e1.resize(V);
      d.resize(V);
      block_ms.resize((V + kBlock - 1) / kBlock);
      block_mm.resize((V + kBlock - 1) / kBlock);
    }
  }
};

template <class T>
void zero_row(T* g, int64_t V) {
  std::memset(static_cast<void*>(g), 0, V * sizeof(T));
}

// Every row kernel's first step: reject a label outside [0, V); a row that takes no part
// (ignored label, and KL not over all rows) gets a zero gradient and is skipped.
template <class T>
bool row_takes_part(const RowParams& P, int64_t y, bool ce_on, T* g, int32_t& status) {
  if (ce_on && (y < 0 || y >= P.V)) {
    status = kLabelOutOfRange;
    return false;
  }
  if (ce_on || P.kl_all_rows) return true;
  if (g) zero_row(g, P.V);
  return false;
}

// Online pass over the student (and mentor, when m != nullptr) of one row.
// Returns a status code; the sums are relative to Ms/Mm.
struct RowStats {
  float Ms = 0.f, Mm = 0.f;
  double Z1 = 0, Zt = 0, Zq = 0, A = 0;
};

template <class TS, class TM>
int32_t row_stats(const SimdKernels& K, const RowParams& P, const TS* s, const TM* m, Scratch& sc, RowStats& r) {
  const int64_t V = P.V;
  sc.reserve_row(V);
  for (int64_t b = 0; b < V; b += kBlock) {
    const int64_t n = std::min(kBlock, V - b);
    const float* sb = Io<TS>::load(K, s + b, n, sc.s.data());
    const float* mb = m ? Io<TM>::load(K, m + b, n, sc.m.data()) : nullptr;
    float bms, bmm = 0.f, fs, fm = 0.f;
    if (m)
      K.max2(sb, mb, n, &bms, &bmm, &fs, &fm);
    else
      K.max1(sb, n, &bms, &fs);
    if (fs != 0.f) return kStudentNonFinite;  // NaN/Inf made the x·0 sum NaN
    if (fm != 0.f) return kMentorNonFinite;
    if (b == 0) {
      r.Ms = bms;
      r.Mm = bmm;
    } else if (bms > r.Ms || bmm > r.Mm) {
      // The maxima grew: rescale what was summed against the old ones.
      const float nMs = std::max(r.Ms, bms), nMm = std::max(r.Mm, bmm);
      const double ds = double(nMs) - r.Ms, dm = double(nMm) - r.Mm;
      const double cq = std::exp(-dm * P.inv_tau);
      r.A = cq * (r.A + (ds - dm) * P.inv_tau * r.Zq);
      r.Zq *= cq;
      r.Z1 *= std::exp(-ds);
      r.Zt *= std::exp(-ds * P.inv_tau);
      r.Ms = nMs;
      r.Mm = nMm;
    }
    sc.block_ms[b / kBlock] = r.Ms;
    sc.block_mm[b / kBlock] = r.Mm;
    float o[4];
    if (m) {
      K.stats_full(sb, mb, n, r.Ms, r.Mm, static_cast<float>(P.inv_tau), P.tp, o, sc.et.data() + b, sc.eq.data() + b,
                   sc.e1.data() + b, P.div != kDivFwd ? sc.d.data() + b : nullptr);
      r.Zq += o[2];
      r.A += o[3];
    } else {
      K.stats_student(sb, n, r.Ms, static_cast<float>(P.inv_tau), P.tp, o, sc.et.data() + b, sc.e1.data() + b);
    }
    r.Z1 += o[0];
    r.Zt += o[1];
  }
  return kOk;
}

// Sweeps 2 and 3 of a full row for the divergences other than forward KL (see the header).
template <class TS>
void div_row_rest(const SimdKernels& K, const RowParams& P, const RowStats& r, Scratch& sc, TS* g, int64_t y,
                  bool ce_on, double sy, float& kl_out) {
  const int64_t V = P.V;
  const double lZ1 = std::log(r.Z1), lZt = std::log(r.Zt), lZq = std::log(r.Zq);
  const double c = P.coef, lc = c > 0 ? std::log(c) : 0.0, l1c = c < 1 ? std::log1p(-c) : 0.0;
  double D = 0, S = 0;
  for (int64_t b = 0; b < V; b += kBlock) {
    const int64_t n = std::min(kBlock, V - b);
    const double ds = double(sc.block_ms[b / kBlock]) - r.Ms, dm = double(sc.block_mm[b / kBlock]) - r.Mm;
    const double cp = std::exp(ds * P.inv_tau - lZt), cq = std::exp(dm * P.inv_tau - lZq);
    const double dc = (ds - dm) * P.inv_tau - lZt + lZq;
    float o[2];
    K.div_sums(P.div, sc.et.data() + b, sc.eq.data() + b, sc.d.data() + b, n, static_cast<float>(cp),
               static_cast<float>(cq), static_cast<float>(dc), static_cast<float>(c), static_cast<float>(lc),
               static_cast<float>(l1c), o);
    D += o[0];
    S += o[1];
  }
  kl_out = static_cast<float>(D);
  if (!g) return;
  const double a = ce_on ? P.ce_scale : 0.0, kk = P.kl_scale * P.inv_tau;
  const double c1 = a / r.Z1, ck = kk / r.Zt;
  for (int64_t b = 0; b < V; b += kBlock) {
    const int64_t n = std::min(kBlock, V - b);
    const double ds = double(sc.block_ms[b / kBlock]) - r.Ms;
    const float c1b = static_cast<float>(c1 * std::exp(ds)), ckb = static_cast<float>(ck * std::exp(ds * P.inv_tau));
    float* out = std::is_same<TS, float>::value ? reinterpret_cast<float*>(g + b) : sc.g.data();
    K.grad_div(sc.et.data() + b, sc.e1.data() + b, sc.d.data() + b, n, P.tp, c1b, ckb, static_cast<float>(S), out);
    if (!std::is_same<TS, float>::value) Io<TS>::store(K, sc.g.data(), g + b, n);
  }
  if (ce_on) {
    // The onehot term afresh (h_y is in the row buffer).
    const double xs = sy - r.Ms;
    const double gy = a * (std::exp(xs - lZ1) - 1.0) + kk * std::exp(xs * P.inv_tau - lZt) * (double(sc.d[y]) - S);
    Io<TS>::put(g + y, static_cast<float>(gy));
  }
}

template <class TS, class TM>
void full_row(const SimdKernels& K, const RowParams& P, const TS* s, const TM* m, TS* g, int64_t y, Scratch& sc,
              float& ce_out, float& kl_out, int32_t& status) {
  const int64_t V = P.V;
  ce_out = kl_out = 0.f;
  const bool ce_on = y != P.ignore_index;
  if (!row_takes_part(P, y, ce_on, g, status)) return;
  RowStats r;
  if ((status = row_stats(K, P, s, m, sc, r)) != kOk) return;
  const double lZ1 = std::log(r.Z1), lZt = std::log(r.Zt), lZq = std::log(r.Zq);
  const double sy = ce_on ? Io<TS>::get(s + y) : 0.0, my = ce_on ? Io<TM>::get(m + y) : 0.0;
  if (ce_on) ce_out = static_cast<float>(r.Ms + lZ1 - sy);
  if (P.div != kDivFwd) return div_row_rest<TS>(K, P, r, sc, g, y, ce_on, sy, kl_out);
  kl_out = static_cast<float>(r.A / r.Zq - lZq + lZt);
  if (!g) return;

  const double a = ce_on ? P.ce_scale : 0.0, bk = P.kl_scale * P.inv_tau;
  const double c1 = a / r.Z1, ct = bk / r.Zt, cq = bk / r.Zq;
  for (int64_t b = 0; b < V; b += kBlock) {
    const int64_t n = std::min(kBlock, V - b);
    // Rebase this block's stored exps from the maxima of the time to the final ones.
    const double ds = double(sc.block_ms[b / kBlock]) - r.Ms, dm = double(sc.block_mm[b / kBlock]) - r.Mm;
    const float c1b = static_cast<float>(c1 * std::exp(ds)), ctb = static_cast<float>(ct * std::exp(ds * P.inv_tau)),
                cqb = static_cast<float>(cq * std::exp(dm * P.inv_tau));
    float* out = std::is_same<TS, float>::value ? reinterpret_cast<float*>(g + b) : sc.g.data();
    K.grad_full(sc.et.data() + b, sc.eq.data() + b, sc.e1.data() + b, n, P.tp, c1b, ctb, cqb, out);
    if (!std::is_same<TS, float>::value) Io<TS>::store(K, sc.g.data(), g + b, n);
  }
  if (ce_on) {
    // The onehot term, computed afresh (no read-modify-write in bf16).
    const double xs = sy - r.Ms, xm = my - r.Mm;
    const double gy =
        a * (std::exp(xs - lZ1) - 1.0) + bk * (std::exp(xs * P.inv_tau - lZt) - std::exp(xm * P.inv_tau - lZq));
    Io<TS>::put(g + y, static_cast<float>(gy));
  }
}

// ---- one event of a partition, in double (top-k rows and the float64 path) ----
struct DivCoef {
  int div;
  double c, lc, l1c;
};
DivCoef div_coef(const RowParams& P) {
  return {P.div, P.coef, P.coef > 0 ? std::log(P.coef) : -std::numeric_limits<double>::infinity(),
          P.coef < 1 ? std::log1p(-P.coef) : -std::numeric_limits<double>::infinity()};
}
double lae(double a, double b) {
  const double m = std::max(a, b);
  if (m == -std::numeric_limits<double>::infinity()) return m;
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}
// The D-term of one event with student probability p (log lp) and mentor probability q (log lq,
// -inf when q = 0), and h = ∂D/∂p there (without constants; see the header). Terms weighted
// by a zero probability are 0.
void div_term(const DivCoef& k, double p, double lp, double q, double lq, double& dt, double& h) {
  dt = h = 0;
  switch (k.div) {
    case kDivFwd:
      if (q > 0) dt = q * (lq - lp);
      if (p > 0) h = -q / p;
      break;
    case kDivRev:
      if (p > 0) dt = p * (lp - lq), h = lp - lq;
      break;
    case kDivJsd: {
      const double lM = lae(k.l1c + lp, k.lc + lq);
      if (q > 0) dt -= k.c * q * (lM - lq);
      if (p > 0) dt -= (1 - k.c) * p * (lM - lp), h = (1 - k.c) * (lp - lM);
      break;
    }
    case kDivSkew: {
      const double lr = lae(k.lc + lq, k.l1c + lp);
      if (q > 0) dt = q * (lq - lr), h = -(1 - k.c) * std::exp(lq - lr);
      break;
    }
    case kDivSkewRev: {
      const double lr = lae(k.lc + lp, k.l1c + lq);
      if (p > 0) dt = p * (lp - lr), h = (lp - lr) - k.c * std::exp(lp - lr);
      break;
    }
    default: dt = 0.5 * std::fabs(q - p); h = p > q ? 0.5 : p < q ? -0.5 : 0.0;
  }
}

// Top-k mentor row: see kd_loss.h for the rest-bucket definition.
// The gradient of every student logit as c1·e1 + ct·p_τ-style terms from the row's saved
// exponentials, block by block (each block rescaled from its own running max to the row's);
// topk_row then overwrites the top-k tokens (and the label) with their exact values.
template <class TS>
void student_grad_blocks(const SimdKernels& K, const RowParams& P, Scratch& sc, const RowStats& r, int64_t V, double c1,
                         double ct, TS* g) {
  for (int64_t b = 0; b < V; b += kBlock) {
    const int64_t n = std::min(kBlock, V - b);
    const double ds = double(sc.block_ms[b / kBlock]) - r.Ms;
    const float c1b = static_cast<float>(c1 * std::exp(ds)), ctb = static_cast<float>(ct * std::exp(ds * P.inv_tau));
    float* out = std::is_same<TS, float>::value ? reinterpret_cast<float*>(g + b) : sc.g.data();
    K.grad_student(sc.et.data() + b, sc.e1.data() + b, n, P.tp, c1b, ctb, out);
    if (!std::is_same<TS, float>::value) Io<TS>::store(K, sc.g.data(), g + b, n);
  }
}

template <class TS, class TI, class TL>
void topk_row(const SimdKernels& K, const RowParams& P, const TS* s, const TI* idx, const TL* lp, int64_t k,
              bool has_rest, double rest_in, TS* g, int64_t y, Scratch& sc, float& ce_out, float& kl_out,
              int32_t& status) {
  const int64_t V = P.V;
  ce_out = kl_out = 0.f;
  const bool ce_on = y != P.ignore_index;
  if (!row_takes_part(P, y, ce_on, g, status)) return;
  RowStats r;
  if ((status = row_stats<TS, TS>(K, P, s, nullptr, sc, r)) != kOk) return;
  const double lZ1 = std::log(r.Z1), lZt = std::log(r.Zt);
  const double sy = ce_on ? Io<TS>::get(s + y) : 0.0;
  if (ce_on) ce_out = static_cast<float>(r.Ms + lZ1 - sy);

  // Gather the top-k entries (saving s_t: an in-place write comes next).
  double qsum = 0, eK = 0, klK = 0;
  int64_t cnt = 0;
  bool y_in_k = false;
  sc.topk_s.resize(k);
  auto release = [&] {  // clear the bits this row set
    for (int64_t j = 0; j < k; ++j) {
      const int64_t t = static_cast<int64_t>(idx[j]);
      if (t >= 0 && t < V) sc.bitmap[t >> 6] &= ~(uint64_t(1) << (t & 63));
    }
  };
  for (int64_t j = 0; j < k; ++j) {
    const double l = static_cast<double>(lp[j]);
    if (l == -std::numeric_limits<double>::infinity()) continue;  // padding
    if (!(l <= kTopkMassTolerance)) status = kTopkBadLogprob;
    const int64_t t = static_cast<int64_t>(idx[j]);
    if (t < 0 || t >= V) status = kTopkIndexOutOfRange;
    if (status != kOk) break;
    uint64_t& word = sc.bitmap[t >> 6];
    const uint64_t bit = uint64_t(1) << (t & 63);
    if (word & bit) {
      status = kTopkDuplicate;
      break;
    }
    word |= bit;
    const double st = Io<TS>::get(s + t);
    sc.topk_s[j] = st;
    const double xt = (st - r.Ms) * P.inv_tau;
    const double q = std::exp(l);
    qsum += q;
    eK += std::exp(xt);
    klK += q * (l - (xt - lZt));
    ++cnt;
    y_in_k = y_in_k || t == y;
  }
  if (status == kOk && qsum > 1.0 + kTopkMassTolerance) status = kTopkBadLogprob;
  double rest = has_rest ? rest_in : std::max(0.0, 1.0 - qsum);
  if (status == kOk && has_rest && !(rest >= 0.0 && rest <= 1.0)) status = kBadRestMass;
  if (status != kOk) {
    release();
    return;
  }
  const bool tail = cnt < V;
  if (!tail) rest = 0.0;  // k = V: no tail, exactly the full op
  // Student rest mass, clamped away from 0 (rounding when the top-k holds ~all of it).
  const double p_rest = tail ? std::max((r.Zt - eK) / r.Zt, 1e-30) : 0.0;
  if (P.div != kDivFwd) {
    // The other divergences on the k+1 events (header): D, h per event, S = Σ p h.
    const DivCoef kc = div_coef(P);
    sc.topk_h.resize(k);
    double D = 0, S = 0, dt, h_rest = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double l = static_cast<double>(lp[j]);
      if (l == -std::numeric_limits<double>::infinity()) continue;
      const double lpj = (sc.topk_s[j] - r.Ms) * P.inv_tau - lZt;
      const double pj = std::exp(lpj);
      div_term(kc, pj, lpj, std::exp(l), l, dt, sc.topk_h[j]);
      D += dt;
      S += pj * sc.topk_h[j];
    }
    if (tail) {
      div_term(kc, p_rest, std::log(p_rest), rest, rest > 0 ? std::log(rest) : -std::numeric_limits<double>::infinity(),
               dt, h_rest);
      D += dt;
      S += p_rest * h_rest;
    }
    kl_out = static_cast<float>(D);
    if (g) {
      const double a = ce_on ? P.ce_scale : 0.0, kk = P.kl_scale * P.inv_tau;
      const double c1 = a / r.Z1, ct = kk * (h_rest - S) / r.Zt;
      student_grad_blocks(K, P, sc, r, V, c1, ct, g);
      for (int64_t j = 0; j < k; ++j) {
        const double l = static_cast<double>(lp[j]);
        if (l == -std::numeric_limits<double>::infinity()) continue;
        const int64_t t = static_cast<int64_t>(idx[j]);
        const double xs = sc.topk_s[j] - r.Ms;
        const double gt =
            a * (std::exp(xs - lZ1) - (t == y ? 1.0 : 0.0)) + kk * std::exp(xs * P.inv_tau - lZt) * (sc.topk_h[j] - S);
        Io<TS>::put(g + t, static_cast<float>(gt));
      }
      if (ce_on && !y_in_k) {
        const double xs = sy - r.Ms;
        const double gy = a * (std::exp(xs - lZ1) - 1.0) + kk * std::exp(xs * P.inv_tau - lZt) * (h_rest - S);
        Io<TS>::put(g + y, static_cast<float>(gy));
      }
    }
    release();
    return;
  }
  const double rest_term = rest > 0.0 ? rest * (std::log(rest) - std::log(p_rest)) : 0.0;
  kl_out = static_cast<float>(klK + rest_term);

  if (g) {
    const double a = ce_on ? P.ce_scale : 0.0, bk = P.kl_scale * P.inv_tau;
    // d KL/d s_j = (mass·p_τ,j − q_j)/τ on K and p_τ,j·(mass − r/P_rest)/τ off K, where
    // mass = Σq + r (1 for a normalised mentor; kept exact for a cached, rounded one).
    const double mass = qsum + rest;
    const double tail_factor = mass - (rest > 0.0 ? rest / p_rest : 0.0);
    const double c1 = a / r.Z1, ct = bk * tail_factor / r.Zt;
    student_grad_blocks(K, P, sc, r, V, c1, ct, g);
    // Top-k tokens get (p_τ − q)/τ; written afresh.
    for (int64_t j = 0; j < k; ++j) {
      const double l = static_cast<double>(lp[j]);
      if (l == -std::numeric_limits<double>::infinity()) continue;
      const int64_t t = static_cast<int64_t>(idx[j]);
      const double xs = sc.topk_s[j] - r.Ms;
      const double gt =
          a * (std::exp(xs - lZ1) - (t == y ? 1.0 : 0.0)) + bk * (mass * std::exp(xs * P.inv_tau - lZt) - std::exp(l));
      Io<TS>::put(g + t, static_cast<float>(gt));
    }
    if (ce_on && !y_in_k) {
      const double xs = sy - r.Ms;
      const double gy = a * (std::exp(xs - lZ1) - 1.0) + bk * tail_factor * std::exp(xs * P.inv_tau - lZt);
      Io<TS>::put(g + y, static_cast<float>(gy));
    }
  }
  release();
}

// ---- float64 (gradcheck) path: plain two-pass scalar code ---------------------
void full_row_f64(const RowParams& P, const double* s, const double* m, double* g, int64_t y, double& ce_out,
                  double& kl_out, int32_t& status) {
  const int64_t V = P.V;
  ce_out = kl_out = 0;
  const bool ce_on = y != P.ignore_index;
  if (!row_takes_part(P, y, ce_on, g, status)) return;
  double Ms = -DBL_MAX, Mm = -DBL_MAX;
  for (int64_t j = 0; j < V; ++j) {
    if (!std::isfinite(s[j])) {
      status = kStudentNonFinite;
      return;
    }
    if (!std::isfinite(m[j])) {
      status = kMentorNonFinite;
      return;
    }
    Ms = std::max(Ms, s[j]);
    Mm = std::max(Mm, m[j]);
  }
  double Z1 = 0, Zt = 0, Zq = 0;
  for (int64_t j = 0; j < V; ++j) {
    Z1 += std::exp(s[j] - Ms);
    Zt += std::exp((s[j] - Ms) * P.inv_tau);
    Zq += std::exp((m[j] - Mm) * P.inv_tau);
  }
  const double lZ1 = std::log(Z1), lZt = std::log(Zt), lZq = std::log(Zq);
  if (P.div != kDivFwd) {
    const DivCoef kc = div_coef(P);
    double D = 0, S = 0, dt, h;
    for (int64_t j = 0; j < V; ++j) {
      const double lp = (s[j] - Ms) * P.inv_tau - lZt, lq = (m[j] - Mm) * P.inv_tau - lZq;
      div_term(kc, std::exp(lp), lp, std::exp(lq), lq, dt, h);
      D += dt;
      S += std::exp(lp) * h;
    }
    if (ce_on) ce_out = Ms + lZ1 - s[y];
    kl_out = D;
    if (!g) return;
    const double a = ce_on ? P.ce_scale : 0.0, kk = P.kl_scale * P.inv_tau;
    for (int64_t j = 0; j < V; ++j) {
      const double lp = (s[j] - Ms) * P.inv_tau - lZt, lq = (m[j] - Mm) * P.inv_tau - lZq;
      div_term(kc, std::exp(lp), lp, std::exp(lq), lq, dt, h);
      g[j] = a * (std::exp(s[j] - Ms - lZ1) - (j == y ? 1.0 : 0.0)) + kk * std::exp(lp) * (h - S);
    }
    return;
  }
  double kl = 0;
  for (int64_t j = 0; j < V; ++j) {
    const double lq = (m[j] - Mm) * P.inv_tau - lZq;
    kl += std::exp(lq) * (lq - ((s[j] - Ms) * P.inv_tau - lZt));
  }
  if (ce_on) ce_out = Ms + lZ1 - s[y];
  kl_out = kl;
  if (!g) return;
  const double a = ce_on ? P.ce_scale : 0.0, bk = P.kl_scale * P.inv_tau;
  for (int64_t j = 0; j < V; ++j) {
    const double xs = s[j] - Ms;
    g[j] = a * (std::exp(xs - lZ1) - (j == y ? 1.0 : 0.0)) +
           bk * (std::exp(xs * P.inv_tau - lZt) - std::exp((m[j] - Mm) * P.inv_tau - lZq));
  }
}

void topk_row_f64(const RowParams& P, const double* s, const int64_t* idx, const double* lp, int64_t k, bool has_rest,
                  double rest_in, double* g, int64_t y, Scratch& sc, double& ce_out, double& kl_out, int32_t& status) {
  const int64_t V = P.V;
  ce_out = kl_out = 0;
  const bool ce_on = y != P.ignore_index;
  if (!row_takes_part(P, y, ce_on, g, status)) return;
  double Ms = -DBL_MAX;
  for (int64_t j = 0; j < V; ++j) {
    if (!std::isfinite(s[j])) {
      status = kStudentNonFinite;
      return;
    }
    Ms = std::max(Ms, s[j]);
  }
  double Z1 = 0, Zt = 0;
  for (int64_t j = 0; j < V; ++j) {
    Z1 += std::exp(s[j] - Ms);
    Zt += std::exp((s[j] - Ms) * P.inv_tau);
  }
  const double lZ1 = std::log(Z1), lZt = std::log(Zt);
  if (ce_on) ce_out = Ms + lZ1 - s[y];
  // Membership as a dense mask (this path is for small gradcheck shapes).
  std::vector<double> q(V, 0.0);
  std::vector<char> in_k(V, 0);
  double qsum = 0, klK = 0, eK = 0;
  int64_t cnt = 0;
  for (int64_t j = 0; j < k; ++j) {
    const double l = lp[j];
    if (l == -std::numeric_limits<double>::infinity()) continue;
    if (!(l <= kTopkMassTolerance)) {
      status = kTopkBadLogprob;
      return;
    }
    const int64_t t = idx[j];
    if (t < 0 || t >= V) {
      status = kTopkIndexOutOfRange;
      return;
    }
    if (in_k[t]) {
      status = kTopkDuplicate;
      return;
    }
    in_k[t] = 1;
    q[t] = std::exp(l);
    qsum += q[t];
    const double xt = (s[t] - Ms) * P.inv_tau;
    eK += std::exp(xt);
    klK += q[t] * (l - (xt - lZt));
    ++cnt;
  }
  if (qsum > 1.0 + kTopkMassTolerance) {
    status = kTopkBadLogprob;
    return;
  }
  double rest = has_rest ? rest_in : std::max(0.0, 1.0 - qsum);
  if (has_rest && !(rest >= 0.0 && rest <= 1.0)) {
    status = kBadRestMass;
    return;
  }
  const bool tail = cnt < V;
  if (!tail) rest = 0.0;
  const double p_rest = tail ? std::max((Zt - eK) / Zt, 1e-300) : 0.0;
  if (P.div != kDivFwd) {
    const DivCoef kc = div_coef(P);
    std::vector<double> hv(V, 0.0);
    double D = 0, S = 0, dt, h_rest = 0;
    for (int64_t j = 0; j < V; ++j) {
      if (!in_k[j]) continue;
      const double lpj = (s[j] - Ms) * P.inv_tau - lZt;
      div_term(kc, std::exp(lpj), lpj, q[j], std::log(q[j]), dt, hv[j]);
      D += dt;
      S += std::exp(lpj) * hv[j];
    }
    if (tail) {
      div_term(kc, p_rest, std::log(p_rest), rest, rest > 0 ? std::log(rest) : -std::numeric_limits<double>::infinity(),
               dt, h_rest);
      D += dt;
      S += p_rest * h_rest;
    }
    kl_out = D;
    if (!g) return;
    const double a = ce_on ? P.ce_scale : 0.0, kk = P.kl_scale * P.inv_tau;
    for (int64_t j = 0; j < V; ++j) {
      const double xs = s[j] - Ms, pt = std::exp(xs * P.inv_tau - lZt);
      g[j] = a * (std::exp(xs - lZ1) - (j == y ? 1.0 : 0.0)) + kk * pt * ((in_k[j] ? hv[j] : h_rest) - S);
    }
    return;
  }
  kl_out = klK + (rest > 0.0 ? rest * (std::log(rest) - std::log(p_rest)) : 0.0);
  if (!g) return;
  const double a = ce_on ? P.ce_scale : 0.0, bk = P.kl_scale * P.inv_tau;
  const double mass = qsum + rest;
  const double tail_factor = mass - (rest > 0.0 ? rest / p_rest : 0.0);
  for (int64_t j = 0; j < V; ++j) {
    const double xs = s[j] - Ms, pt = std::exp(xs * P.inv_tau - lZt);
    const double kl_part = in_k[j] ? mass * pt - q[j] : pt * tail_factor;
    g[j] = a * (std::exp(xs - lZ1) - (j == y ? 1.0 : 0.0)) + bk * kl_part;
  }
}

// ---- op kernels ----------------------------------------------------------------
struct Prepared {
  at::Tensor student, labels, grad, row_ce, row_kl, status;
  RowParams P;
};

Prepared prepare(const at::Tensor& student, const at::Tensor& labels, const at::Tensor& scales, double tau,
                 bool kl_all_rows, int64_t ignore_index, int64_t grad_mode, int64_t divergence, double coef) {
  TORCH_CHECK(divergence >= kDivFwd && divergence <= kDivTvd, "kd_rows: bad divergence id ", divergence);
  TORCH_CHECK(divergence == kDivFwd || divergence == kDivRev || divergence == kDivTvd || (coef > 0 && coef < 1),
              "kd_rows: coef must be in (0, 1) for divergence ", divergence, ", got ", coef);
  TORCH_CHECK(student.dim() == 2, "kd_rows: student must be [N,V]");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == student.size(0), "kd_rows: labels must be [N]");
  TORCH_CHECK(tau > 0 && std::isfinite(tau), "kd_rows: tau must be > 0");
  TORCH_CHECK(grad_mode >= kGradNone && grad_mode <= kGradInplace, "kd_rows: bad grad_mode");
  TORCH_CHECK(grad_mode != kGradInplace || student.is_contiguous(),
              "kd_rows: an in-place gradient needs contiguous student logits");
  Prepared p;
  p.student = student.contiguous();
  p.labels = labels.to(at::kLong).contiguous();
  const bool f64 = student.scalar_type() == at::kDouble;
  const auto acc = at::TensorOptions().dtype(f64 ? at::kDouble : at::kFloat);
  const int64_t N = student.size(0);
  p.row_ce = at::empty({N}, acc);
  p.row_kl = at::empty({N}, acc);
  p.status = at::zeros({N}, at::TensorOptions().dtype(at::kInt));
  p.grad = grad_mode == kGradNone  ? at::empty({0}, student.options())
           : grad_mode == kGradNew ? at::empty_like(p.student)
                                   : p.student;
  if (grad_mode == kGradNew) hint_huge_pages(p.grad);
  at::Tensor sc = scales.to(at::kDouble).contiguous();
  TORCH_CHECK(sc.numel() == 2, "kd_rows: scales must hold [ce_scale, kl_scale]");
  p.P.V = student.size(1);
  p.P.tau = tau;
  p.P.inv_tau = 1.0 / tau;
  p.P.tp = tau_mode(tau);
  p.P.ce_scale = sc.data_ptr<double>()[0];
  p.P.kl_scale = sc.data_ptr<double>()[1];
  p.P.kl_all_rows = kl_all_rows;
  p.P.ignore_index = ignore_index;
  p.P.div = static_cast<int>(divergence);
  p.P.coef = coef;
  return p;
}

template <class F>
void for_rows(int64_t N, F&& f) {
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    Scratch sc;
    for (int64_t i = begin; i < end; ++i) f(i, sc);
  });
}

template <class TS, class TM>
void run_full(const Prepared& p, const at::Tensor& mentor, bool want_grad) {
  const SimdKernels& K = *current_isa().load();
  const int64_t N = p.student.size(0), V = p.P.V;
  const TS* s = p.student.data_ptr<TS>();
  const TM* m = mentor.data_ptr<TM>();
  TS* g = want_grad ? p.grad.data_ptr<TS>() : nullptr;
  const int64_t* y = p.labels.data_ptr<int64_t>();
  float* ce = p.row_ce.data_ptr<float>();
  float* kl = p.row_kl.data_ptr<float>();
  int32_t* st = p.status.data_ptr<int32_t>();
  for_rows(N, [&](int64_t i, Scratch& sc) {
    full_row<TS, TM>(K, p.P, s + i * V, m + i * V, g ? g + i * V : nullptr, y[i], sc, ce[i], kl[i], st[i]);
  });
}

template <class TS>
void run_full_student(const Prepared& p, const at::Tensor& mentor, bool want_grad) {
  switch (mentor.scalar_type()) {
    case at::kFloat: return run_full<TS, float>(p, mentor, want_grad);
    case at::kBFloat16: return run_full<TS, c10::BFloat16>(p, mentor, want_grad);
    case at::kHalf: return run_full<TS, c10::Half>(p, mentor, want_grad);
    default: TORCH_CHECK(false, "kd_rows: unsupported mentor dtype ", mentor.scalar_type());
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> kd_rows_cpu(
    const at::Tensor& student, const at::Tensor& mentor_in, const at::Tensor& labels, const at::Tensor& scales,
    double tau, bool kl_all_rows, int64_t ignore_index, int64_t grad_mode, int64_t divergence, double coef) {
  TORCH_CHECK(mentor_in.sizes() == student.sizes(), "kd_rows: mentor must match student's shape");
  Prepared p = prepare(student, labels, scales, tau, kl_all_rows, ignore_index, grad_mode, divergence, coef);
  at::Tensor mentor = mentor_in.contiguous();
  const bool want_grad = grad_mode != kGradNone;
  const int64_t N = p.student.size(0), V = p.P.V;
  if (N > 0 && V > 0) {
    if (student.scalar_type() == at::kDouble) {
      TORCH_CHECK(mentor.scalar_type() == at::kDouble, "kd_rows: float64 needs float64 mentor logits too");
      const double* s = p.student.data_ptr<double>();
      const double* m = mentor.data_ptr<double>();
      double* g = want_grad ? p.grad.data_ptr<double>() : nullptr;
      const int64_t* y = p.labels.data_ptr<int64_t>();
      double* ce = p.row_ce.data_ptr<double>();
      double* kl = p.row_kl.data_ptr<double>();
      int32_t* st = p.status.data_ptr<int32_t>();
      for_rows(N, [&](int64_t i, Scratch&) {
        full_row_f64(p.P, s + i * V, m + i * V, g ? g + i * V : nullptr, y[i], ce[i], kl[i], st[i]);
      });
    } else {
      TORCH_CHECK(mentor.scalar_type() != at::kDouble, "kd_rows: float64 mentor needs float64 student logits too");
      switch (student.scalar_type()) {
        case at::kFloat: run_full_student<float>(p, mentor, want_grad); break;
        case at::kBFloat16: run_full_student<c10::BFloat16>(p, mentor, want_grad); break;
        case at::kHalf: run_full_student<c10::Half>(p, mentor, want_grad); break;
        default: TORCH_CHECK(false, "kd_rows: unsupported student dtype ", student.scalar_type());
      }
    }
  } else {
    p.row_ce.zero_();
    p.row_kl.zero_();
  }
  return {p.row_ce, p.row_kl, p.status, p.grad};
}

template <class TS>
void run_topk(const Prepared& p, const at::Tensor& idx, const at::Tensor& lp, const at::Tensor& rest, bool want_grad) {
  const SimdKernels& K = *current_isa().load();
  const int64_t N = p.student.size(0), V = p.P.V, k = idx.size(1);
  const TS* s = p.student.data_ptr<TS>();
  TS* g = want_grad ? p.grad.data_ptr<TS>() : nullptr;
  const int64_t* ix = idx.data_ptr<int64_t>();
  const float* l = lp.data_ptr<float>();
  const float* r = rest.defined() ? rest.data_ptr<float>() : nullptr;
  const int64_t* y = p.labels.data_ptr<int64_t>();
  float* ce = p.row_ce.data_ptr<float>();
  float* kl = p.row_kl.data_ptr<float>();
  int32_t* st = p.status.data_ptr<int32_t>();
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    Scratch sc;
    sc.bitmap.assign((V + 63) / 64, 0);
    for (int64_t i = begin; i < end; ++i)
      topk_row<TS, int64_t, float>(K, p.P, s + i * V, ix + i * k, l + i * k, k, r != nullptr, r ? r[i] : 0.0,
                                   g ? g + i * V : nullptr, y[i], sc, ce[i], kl[i], st[i]);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> kd_topk_rows_cpu(
    const at::Tensor& student, const at::Tensor& indices, const at::Tensor& logprobs,
    const c10::optional<at::Tensor>& rest_mass, const at::Tensor& labels, const at::Tensor& scales, double tau,
    bool kl_all_rows, int64_t ignore_index, int64_t grad_mode, int64_t divergence, double coef) {
  Prepared p = prepare(student, labels, scales, tau, kl_all_rows, ignore_index, grad_mode, divergence, coef);
  const int64_t N = p.student.size(0), V = p.P.V;
  TORCH_CHECK(indices.dim() == 2 && indices.size(0) == N, "kd_topk_rows: indices must be [N,k]");
  TORCH_CHECK(logprobs.sizes() == indices.sizes(), "kd_topk_rows: logprobs must match indices");
  const bool f64 = student.scalar_type() == at::kDouble;
  at::Tensor idx = indices.to(at::kLong).contiguous();
  at::Tensor lp = logprobs.to(f64 ? at::kDouble : at::kFloat).contiguous();
  at::Tensor rest;
  if (rest_mass.has_value() && rest_mass->defined()) {
    TORCH_CHECK(rest_mass->numel() == N, "kd_topk_rows: rest_mass must be [N]");
    rest = rest_mass->reshape({N}).to(f64 ? at::kDouble : at::kFloat).contiguous();
  }
  const bool want_grad = grad_mode != kGradNone;
  const int64_t k = idx.size(1);
  if (N > 0 && V > 0) {
    if (f64) {
      const double* s = p.student.data_ptr<double>();
      double* g = want_grad ? p.grad.data_ptr<double>() : nullptr;
      const int64_t* ix = idx.data_ptr<int64_t>();
      const double* l = lp.data_ptr<double>();
      const double* r = rest.defined() ? rest.data_ptr<double>() : nullptr;
      const int64_t* y = p.labels.data_ptr<int64_t>();
      double* ce = p.row_ce.data_ptr<double>();
      double* kl = p.row_kl.data_ptr<double>();
      int32_t* st = p.status.data_ptr<int32_t>();
      for_rows(N, [&](int64_t i, Scratch& sc) {
        topk_row_f64(p.P, s + i * V, ix + i * k, l + i * k, k, r != nullptr, r ? r[i] : 0.0, g ? g + i * V : nullptr,
                     y[i], sc, ce[i], kl[i], st[i]);
      });
    } else {
      switch (student.scalar_type()) {
        case at::kFloat: run_topk<float>(p, idx, lp, rest, want_grad); break;
        case at::kBFloat16: run_topk<c10::BFloat16>(p, idx, lp, rest, want_grad); break;
        case at::kHalf: run_topk<c10::Half>(p, idx, lp, rest, want_grad); break;
        default: TORCH_CHECK(false, "kd_topk_rows: unsupported student dtype ", student.scalar_type());
      }
    }
  } else {
    p.row_ce.zero_();
    p.row_kl.zero_();
  }
  return {p.row_ce, p.row_kl, p.status, p.grad};
}

}  // namespace

std::string cpu_isa() { return current_isa().load()->name; }
void set_cpu_isa(const std::string& name) { current_isa().store(isa_by_name(name)); }

TORCH_LIBRARY_IMPL(mentor_kd_loss, CPU, m) {
  m.impl("kd_rows", TORCH_FN(kd_rows_cpu));
  m.impl("kd_topk_rows", TORCH_FN(kd_topk_rows_cpu));
}

}  // namespace kd
}  // namespace mentor_kd
