// CUDA kernels of the fused KD loss (kd_rows, kd_topk_rows; see kd_common.h),
// registered beside the CPU ones in kd_loss_cpu.cc.
//
// What is fused, and why it is legal: as on CPU (kd_loss_cpu.cc), every N×V
// quantity of CE + KL(q‖p_τ) and of their gradient is a function of a few
// per-row scalars — the maxima Ms, Mm and Z1 = Σe^(s−Ms), Zt = Σe^((s−Ms)/τ),
// Zq = Σe^((m−Mm)/τ), A = Σe^((m−Mm)/τ)((m−Mm)−(s−Ms))/τ — giving
//   CE = Ms + log Z1 − s_y,  KL = A/Zq − log Zq + log Zt,
//   dL/ds = ce_scale·(p − onehot(y)) + kl_scale·(p_τ − q)/τ.
// A row per block (a row per warp when V ≤ 2048): each thread keeps an online
// (max, sums) state over its strided, 16-byte vector loads; states merge by a
// warp shuffle then through shared memory (the merge rebases both sides to
// the larger max, so it is associative). The block then rereads the row —
// ≤ 256 KiB, recently read, so mostly from L2 — and writes the gradient,
// over the student logits when asked (each element is read by the thread that
// writes it). The upstream gradient of a scalar loss is a scalar, so backward
// is a scale. Accumulation in fp32 (fp64 for fp64), no N×V temporaries.
//
// The other divergences (issue 14): the same formulas as on CPU (see the
// header of kd_loss_cpu.cc for D, h = ∂D/∂p and dD/dz = p(h − S), S = Σ p h).
// After pass 1 a second pass sums D and S (log p, log q from the logits'
// differences, so exact where an exp underflows) and a third writes the
// gradient; both reread the row from the shared-memory cache or L2, like the
// forward-KL gradient pass. Top-k: D, S on the k+1 events, then the tail sweep.
//
// Only stable APIs: AT_DISPATCH_FLOATING_TYPES_AND2, getCurrentCUDAStream,
// C10_CUDA_KERNEL_LAUNCH_CHECK, CUDACachingAllocator stats (bench only).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "runtime/settings.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <tuple>
#include <type_traits>

#include "kd/kd_common.h"

namespace mentor_kd {
namespace kd {
namespace {

constexpr int kBlockThreads = 512;         // a row per block
constexpr int kCachedBlockThreads = 1024;  // a row per block, row cached in shared memory (1 block per SM)
constexpr int kWarpRowsPerBlock = 8;       // a row per warp: 8 rows, 256 threads
constexpr int64_t kWarpRowMaxV = 2048;

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename acc_t>
__device__ __forceinline__ acc_t dexp(acc_t x) {
  return exp(x);
}
template <>
__device__ __forceinline__ float dexp<float>(float x) {
  return expf(x);
}
template <typename acc_t>
__device__ __forceinline__ acc_t dlog(acc_t x) {
  return log(x);
}
template <>
__device__ __forceinline__ float dlog<float>(float x) {
  return logf(x);
}

template <typename acc_t>
__device__ __forceinline__ acc_t dlae(acc_t a, acc_t b) {
  const acc_t m = a > b ? a : b;
  if (m == acc_t(-INFINITY)) return m;
  return m + log1p(exp(-fabs(a - b)));
}

// One event's D-term and h (kd_loss_cpu.cc div_term): p, q probabilities, lp, lq their logs.
template <typename acc_t>
__device__ __forceinline__ void div_term_d(int div, acc_t c, acc_t lc, acc_t l1c, acc_t p, acc_t lp, acc_t q, acc_t lq,
                                           acc_t& dt, acc_t& h) {
  dt = h = acc_t(0);
  if (div == kDivFwd) {
    if (q > 0) dt = q * (lq - lp);
    if (p > 0) h = -q / p;
  } else if (div == kDivRev) {
    if (p > 0) dt = p * (lp - lq), h = lp - lq;
  } else if (div == kDivJsd) {
    const acc_t lM = dlae(l1c + lp, lc + lq);
    if (q > 0) dt -= c * q * (lM - lq);
    if (p > 0) dt -= (acc_t(1) - c) * p * (lM - lp), h = (acc_t(1) - c) * (lp - lM);
  } else if (div == kDivSkew) {
    const acc_t lr = dlae(lc + lq, l1c + lp);
    if (q > 0) dt = q * (lq - lr), h = -(acc_t(1) - c) * exp(lq - lr);
  } else if (div == kDivSkewRev) {
    const acc_t lr = dlae(lc + lp, l1c + lq);
    if (p > 0) dt = p * (lp - lr), h = (lp - lr) - c * exp(lp - lr);
  } else {
    dt = acc_t(0.5) * fabs(q - p);
    h = p > q ? acc_t(0.5) : p < q ? acc_t(-0.5) : acc_t(0);
  }
}

// Empty states use a very negative finite max, so rebasing them gives 0·finite = 0, never inf−inf.
template <typename acc_t>
__device__ __forceinline__ acc_t empty_max() {
  return acc_t(-1e30);
}

// Online state of one thread / warp / block over part of a row, relative to its maxima.
template <typename acc_t>
struct Stats {
  acc_t Ms, Mm, Z1, Zt, Zq, A;
};

template <typename acc_t>
__device__ __forceinline__ Stats<acc_t> stats_empty() {
  return Stats<acc_t>{empty_max<acc_t>(), empty_max<acc_t>(), acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
}

// Re-expresses p relative to larger maxima Ms ≥ p.Ms, Mm ≥ p.Mm.
template <typename acc_t>
__device__ __forceinline__ Stats<acc_t> rebase(const Stats<acc_t>& p, acc_t Ms, acc_t Mm, acc_t inv_tau) {
  const acc_t ds = Ms - p.Ms, dm = Mm - p.Mm;
  const acc_t cq = dexp(-dm * inv_tau);
  Stats<acc_t> r;
  r.Ms = Ms;
  r.Mm = Mm;
  r.Z1 = p.Z1 * dexp(-ds);
  r.Zt = p.Zt * dexp(-ds * inv_tau);
  r.Zq = p.Zq * cq;
  r.A = cq * (p.A + (ds - dm) * inv_tau * p.Zq);
  return r;
}

template <typename acc_t>
__device__ __forceinline__ Stats<acc_t> combine(const Stats<acc_t>& a, const Stats<acc_t>& b, acc_t inv_tau) {
  const acc_t Ms = a.Ms > b.Ms ? a.Ms : b.Ms, Mm = a.Mm > b.Mm ? a.Mm : b.Mm;
  Stats<acc_t> x = rebase(a, Ms, Mm, inv_tau), y = rebase(b, Ms, Mm, inv_tau);
  x.Z1 += y.Z1;
  x.Zt += y.Zt;
  x.Zq += y.Zq;
  x.A += y.A;
  return x;
}

template <typename acc_t>
__device__ __forceinline__ Stats<acc_t> warp_combine(Stats<acc_t> s, acc_t inv_tau) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Stats<acc_t> t;
    t.Ms = __shfl_xor_sync(0xffffffffu, s.Ms, o);
    t.Mm = __shfl_xor_sync(0xffffffffu, s.Mm, o);
    t.Z1 = __shfl_xor_sync(0xffffffffu, s.Z1, o);
    t.Zt = __shfl_xor_sync(0xffffffffu, s.Zt, o);
    t.Zq = __shfl_xor_sync(0xffffffffu, s.Zq, o);
    t.A = __shfl_xor_sync(0xffffffffu, s.A, o);
    s = combine(s, t, inv_tau);
  }
  return s;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Shared scratch big enough for 32 warps' Stats<double>.
struct alignas(16) SharedScratch {
  unsigned char bytes[32 * sizeof(Stats<double>)];
};

// Whole-block merge (WARP_ROW = false) or warp merge (true); every thread gets the result.
template <bool WARP_ROW, typename acc_t>
__device__ __forceinline__ Stats<acc_t> group_combine(Stats<acc_t> s, acc_t inv_tau, SharedScratch& sh) {
  s = warp_combine(s, inv_tau);
  if (WARP_ROW) return s;
  auto* buf = reinterpret_cast<Stats<acc_t>*>(sh.bytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
  __syncthreads();  // sh may still be read from a previous use
  if (lane == 0) buf[warp] = s;
  __syncthreads();
  Stats<acc_t> t = lane < nwarps ? buf[lane] : stats_empty<acc_t>();
  return warp_combine(t, inv_tau);
}

template <bool WARP_ROW, typename T>
__device__ __forceinline__ T group_sum(T v, SharedScratch& sh) {
  v = warp_sum(v);
  if (WARP_ROW) return v;
  auto* buf = reinterpret_cast<T*>(sh.bytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  T t = lane < nwarps ? buf[lane] : T(0);
  return warp_sum(t);
}

template <bool WARP_ROW>
__device__ __forceinline__ bool group_any(bool b) {
  if (WARP_ROW) return __any_sync(0xffffffffu, b);
  return __syncthreads_or(b) != 0;
}

template <bool WARP_ROW>
__device__ __forceinline__ void group_sync() {
  if (WARP_ROW)
    __syncwarp();
  else
    __syncthreads();
}

// e^(x/τ) and e^x for x ≤ 0; for τ ∈ {1,2,4} the second is a power of the first.
template <typename acc_t>
__device__ __forceinline__ void exp_pair(acc_t x, acc_t inv_tau, int tp, acc_t& et, acc_t& e1) {
  et = dexp(x * inv_tau);
  if (tp == 1) {
    e1 = et;
  } else if (tp == 2) {
    e1 = et * et;
  } else if (tp == 4) {
    const acc_t e2 = et * et;
    e1 = e2 * e2;
  } else {
    e1 = dexp(x);
  }
}

// Folds VN values of s (and m) into a thread's state: one rebase per pack, not per element.
template <int VN, bool HAS_M, typename acc_t>
__device__ __forceinline__ void consume(Stats<acc_t>& st, const acc_t (&xs)[VN], const acc_t (&xm)[VN], acc_t inv_tau,
                                        int tp, bool& bad_s, bool& bad_m) {
  acc_t bs = xs[0], bm = HAS_M ? xm[0] : acc_t(0);
#pragma unroll
  for (int i = 0; i < VN; ++i) {
    bad_s |= !isfinite(xs[i]);
    bs = xs[i] > bs ? xs[i] : bs;
    if (HAS_M) {
      bad_m |= !isfinite(xm[i]);
      bm = xm[i] > bm ? xm[i] : bm;
    }
  }
  if (bs > st.Ms || (HAS_M && bm > st.Mm))
    st = rebase(st, bs > st.Ms ? bs : st.Ms, HAS_M && bm > st.Mm ? bm : st.Mm, inv_tau);
#pragma unroll
  for (int i = 0; i < VN; ++i) {
    const acc_t es = xs[i] - st.Ms;
    acc_t et, e1;
    exp_pair(es, inv_tau, tp, et, e1);
    st.Z1 += e1;
    st.Zt += et;
    if (HAS_M) {
      const acc_t em = xm[i] - st.Mm;
      const acc_t eq = dexp(em * inv_tau);
      st.Zq += eq;
      st.A += eq * ((em - es) * inv_tau);
    }
  }
}

// Element range of a row split into a scalar head, 16-byte-aligned packs and a scalar tail.
// Packs are used only if s, m and g can all be aligned at the same element.
template <int VEC, typename TS, typename TM>
__device__ __forceinline__ int64_t vector_head(const TS* s, const TM* m, const TS* g, int64_t V) {
  if (VEC == 1) return 0;
  const uint64_t es = reinterpret_cast<uintptr_t>(s) / sizeof(TS);
  const int64_t h = static_cast<int64_t>((VEC - es % VEC) % VEC);
  bool ok = reinterpret_cast<uintptr_t>(s) % sizeof(TS) == 0;
  if (m)
    ok = ok && reinterpret_cast<uintptr_t>(m) % sizeof(TM) == 0 &&
         (reinterpret_cast<uintptr_t>(m) / sizeof(TM) + h) % VEC == 0;
  if (g) ok = ok && (reinterpret_cast<uintptr_t>(g) / sizeof(TS) + h) % VEC == 0;
  return ok && h <= V ? h : V;  // V: everything goes through the scalar path
}

// Visits the row: f1(j) for scalar elements, fv(j) for the first index of each pack.
template <int VEC, typename F1, typename FV>
__device__ __forceinline__ void for_row(int64_t V, int64_t h, int lane, int nthreads, F1&& f1, FV&& fv) {
  for (int64_t j = lane; j < h; j += nthreads) f1(j);
  const int64_t nvec = VEC > 1 ? (V - h) / VEC : 0;
  for (int64_t p = lane; p < nvec; p += nthreads) fv(h + p * VEC);
  for (int64_t j = h + nvec * VEC + lane; j < V; j += nthreads) f1(j);
}

// Row cache in dynamic shared memory (CACHE): pass 1 keeps the row's s and m
// there, so pass 2 rereads them on chip instead of from L2/HBM (3 units of HBM
// traffic per element instead of up to 5). Each thread rereads exactly the
// elements it stored, so no barrier is needed between the passes for it.
extern __shared__ __align__(16) unsigned char kd_dyn_smem[];

__host__ __device__ constexpr int64_t round16(int64_t b) { return (b + 15) / 16 * 16; }

// The start every row kernel shares: a label outside [0, V) is reported; a row outside both
// CE and KL (ignored, and KL not over all rows) gets a zero gradient. False: the row is done.
template <typename TS, typename acc_t>
__device__ __forceinline__ bool row_prologue(int64_t row, int64_t y, bool ce_on, bool kl_on, int64_t V, int lane,
                                             int nthreads, TS* g, acc_t* row_ce, acc_t* row_kl, int32_t* status) {
  if (ce_on && (y < 0 || y >= V)) {
    if (lane == 0) {
      status[row] = kLabelOutOfRange;
      row_ce[row] = row_kl[row] = acc_t(0);
    }
    return false;
  }
  if (!kl_on) {
    if (g)
      for (int64_t j = lane; j < V; j += nthreads) g[j] = TS(0);
    if (lane == 0) {
      status[row] = kOk;
      row_ce[row] = row_kl[row] = acc_t(0);
    }
    return false;
  }
  return true;
}

template <typename TS, typename TM, typename acc_t, int VEC, bool WARP_ROW, bool CACHE>
__global__ void __launch_bounds__(WARP_ROW ? kWarpRowsPerBlock * 32 : (CACHE ? kCachedBlockThreads : kBlockThreads))
    kd_rows_kernel(const TS* s_all, const TM* __restrict__ m_all, TS* g_all, const int64_t* __restrict__ labels,
                   const acc_t* __restrict__ scales, acc_t* __restrict__ row_ce, acc_t* __restrict__ row_kl,
                   int32_t* __restrict__ status, int64_t N, int64_t V, acc_t inv_tau, int tp, bool kl_all,
                   int64_t ignore, int div, acc_t coef) {
  __shared__ SharedScratch sh;
  TS* cs = reinterpret_cast<TS*>(kd_dyn_smem);
  TM* cm = reinterpret_cast<TM*>(kd_dyn_smem + round16(CACHE ? V * int64_t(sizeof(TS)) : 0));
  const int64_t row = WARP_ROW ? int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32 : int64_t(blockIdx.x);
  if (row >= N) return;  // uniform over the row's group
  const int lane = WARP_ROW ? threadIdx.x % 32 : threadIdx.x;
  const int nthreads = WARP_ROW ? 32 : blockDim.x;
  const TS* s = s_all + row * V;
  const TM* m = m_all + row * V;
  TS* g = g_all ? g_all + row * V : nullptr;

  const int64_t y = labels[row];
  const bool ce_on = y != ignore;
  if (!row_prologue(row, y, ce_on, ce_on || kl_all, V, lane, nthreads, g, row_ce, row_kl, status)) return;

  // Pass 1: online statistics.
  const int64_t h = vector_head<VEC>(s, m, g, V);
  Stats<acc_t> st = stats_empty<acc_t>();
  bool bad_s = false, bad_m = false;
  for_row<VEC>(
      V, h, lane, nthreads,
      [&](int64_t j) {
        const TS sv = s[j];
        const TM mv = m[j];
        if (CACHE) {
          cs[j] = sv;
          cm[j] = mv;
        }
        const acc_t xs[1] = {static_cast<acc_t>(sv)}, xm[1] = {static_cast<acc_t>(mv)};
        consume<1, true>(st, xs, xm, inv_tau, tp, bad_s, bad_m);
      },
      [&](int64_t j) {
        const Pack<TS, VEC> ps = *reinterpret_cast<const Pack<TS, VEC>*>(s + j);
        const Pack<TM, VEC> pm = *reinterpret_cast<const Pack<TM, VEC>*>(m + j);
        acc_t xs[VEC], xm[VEC];
#pragma unroll
        for (int i = 0; i < VEC; ++i) {
          if (CACHE) {
            cs[j + i] = ps.v[i];
            cm[j + i] = pm.v[i];
          }
          xs[i] = static_cast<acc_t>(ps.v[i]);
          xm[i] = static_cast<acc_t>(pm.v[i]);
        }
        consume<VEC, true>(st, xs, xm, inv_tau, tp, bad_s, bad_m);
      });
  // Read s_y, m_y before anyone overwrites them with the gradient.
  const acc_t sy = ce_on ? static_cast<acc_t>(s[y]) : acc_t(0), my = ce_on ? static_cast<acc_t>(m[y]) : acc_t(0);
  const bool any_bad_s = group_any<WARP_ROW>(bad_s);
  const bool any_bad_m = group_any<WARP_ROW>(bad_m);
  if (any_bad_s || any_bad_m) {
    if (lane == 0) {
      status[row] = any_bad_s ? kStudentNonFinite : kMentorNonFinite;
      row_ce[row] = row_kl[row] = acc_t(0);
    }
    return;
  }
  st = group_combine<WARP_ROW>(st, inv_tau, sh);
  const acc_t lZ1 = dlog(st.Z1), lZt = dlog(st.Zt), lZq = dlog(st.Zq);
  if (div != kDivFwd) {
    // Passes 2 (D, S) and 3 (gradient), element j by thread j % nthreads in both.
    group_sync<WARP_ROW>();  // the row cache was filled in pass 1's order
    const acc_t lc = coef > 0 ? log(coef) : acc_t(-INFINITY), l1c = coef < 1 ? log1p(-coef) : acc_t(-INFINITY);
    auto term = [&](int64_t j, acc_t& p, acc_t& h) {
      const acc_t xs = static_cast<acc_t>(CACHE ? cs[j] : s[j]), xm = static_cast<acc_t>(CACHE ? cm[j] : m[j]);
      const acc_t lp = (xs - st.Ms) * inv_tau - lZt, lq = (xm - st.Mm) * inv_tau - lZq;
      p = dexp(lp);
      acc_t dt;
      div_term_d<acc_t>(div, coef, lc, l1c, p, lp, dexp(lq), lq, dt, h);
      return dt;
    };
    acc_t Dp = 0, Sp = 0;
    for (int64_t j = lane; j < V; j += nthreads) {
      acc_t p, hh;
      Dp += term(j, p, hh);
      Sp += p * hh;
    }
    const acc_t D = group_sum<WARP_ROW>(Dp, sh), S = group_sum<WARP_ROW>(Sp, sh);
    if (lane == 0) {
      status[row] = kOk;
      row_ce[row] = ce_on ? st.Ms + lZ1 - sy : acc_t(0);
      row_kl[row] = D;
    }
    if (!g) return;
    const acc_t a = ce_on ? scales[0] : acc_t(0), kk = scales[1] * inv_tau;
    for (int64_t j = lane; j < V; j += nthreads) {
      acc_t p, hh;
      term(j, p, hh);
      const acc_t xs = static_cast<acc_t>(CACHE ? cs[j] : s[j]);
      g[j] = static_cast<TS>(a * dexp(xs - st.Ms - lZ1) + kk * p * (hh - S));
    }
    if (ce_on) {
      group_sync<WARP_ROW>();
      if (lane == 0) {
        const acc_t xs = sy - st.Ms, xm = my - st.Mm;
        const acc_t lp = xs * inv_tau - lZt, lq = xm * inv_tau - lZq;
        acc_t dt, hy;
        div_term_d<acc_t>(div, coef, lc, l1c, dexp(lp), lp, dexp(lq), lq, dt, hy);
        g[y] = static_cast<TS>(a * (dexp(xs - lZ1) - acc_t(1)) + kk * dexp(lp) * (hy - S));
      }
    }
    return;
  }
  if (lane == 0) {
    status[row] = kOk;
    row_ce[row] = ce_on ? st.Ms + lZ1 - sy : acc_t(0);
    row_kl[row] = st.A / st.Zq - lZq + lZt;
  }
  if (!g) return;

  // Pass 2: the gradient.
  const acc_t a = ce_on ? scales[0] : acc_t(0), bk = scales[1] * inv_tau;
  const acc_t c1 = a / st.Z1, ct = bk / st.Zt, cq = bk / st.Zq;
  auto grad_of = [&](acc_t xs, acc_t xm) {
    acc_t et, e1;
    exp_pair(xs - st.Ms, inv_tau, tp, et, e1);
    return c1 * e1 + ct * et - cq * dexp((xm - st.Mm) * inv_tau);
  };
  for_row<VEC>(
      V, h, lane, nthreads,
      [&](int64_t j) {
        const acc_t xs = static_cast<acc_t>(CACHE ? cs[j] : s[j]), xm = static_cast<acc_t>(CACHE ? cm[j] : m[j]);
        g[j] = static_cast<TS>(grad_of(xs, xm));
      },
      [&](int64_t j) {
        Pack<TS, VEC> ps;
        Pack<TM, VEC> pm;
        if (CACHE) {
#pragma unroll
          for (int i = 0; i < VEC; ++i) {
            ps.v[i] = cs[j + i];
            pm.v[i] = cm[j + i];
          }
        } else {
          ps = *reinterpret_cast<const Pack<TS, VEC>*>(s + j);
          pm = *reinterpret_cast<const Pack<TM, VEC>*>(m + j);
        }
        Pack<TS, VEC> out;
#pragma unroll
        for (int i = 0; i < VEC; ++i)
          out.v[i] = static_cast<TS>(grad_of(static_cast<acc_t>(ps.v[i]), static_cast<acc_t>(pm.v[i])));
        *reinterpret_cast<Pack<TS, VEC>*>(g + j) = out;
      });
  if (ce_on) {
    group_sync<WARP_ROW>();
    if (lane == 0) {
      const acc_t xs = sy - st.Ms, xm = my - st.Mm;
      const acc_t gy = a * (dexp(xs - lZ1) - acc_t(1)) + bk * (dexp(xs * inv_tau - lZt) - dexp(xm * inv_tau - lZq));
      g[y] = static_cast<TS>(gy);
    }
  }
}

// Top-k mentor (rest bucket, see kd_loss.h), a row per block. The top-k
// membership bitmap (V bits) lives in dynamic shared memory; topk_s saves the
// student logits at the top-k tokens before an in-place gradient overwrites them.
// Dynamic shared memory: [bitmap (V bits, if use_bitmap)][row cache of s (if CACHE)].
template <typename TS, typename acc_t, int VEC, bool CACHE>
__global__ void __launch_bounds__(CACHE ? kCachedBlockThreads : kBlockThreads)
    kd_topk_rows_kernel(const TS* s_all, const int64_t* __restrict__ idx_all, const acc_t* __restrict__ lp_all,
                        const acc_t* __restrict__ rest_all, TS* g_all, const int64_t* __restrict__ labels,
                        const acc_t* __restrict__ scales, acc_t* __restrict__ row_ce, acc_t* __restrict__ row_kl,
                        int32_t* __restrict__ status, acc_t* __restrict__ topk_s_all, int64_t N, int64_t V, int64_t k,
                        acc_t inv_tau, int tp, bool kl_all, int64_t ignore, bool use_bitmap, int div, acc_t coef) {
  __shared__ SharedScratch sh;
  unsigned int* bitmap = reinterpret_cast<unsigned int*>(kd_dyn_smem);
  TS* cs = reinterpret_cast<TS*>(kd_dyn_smem + (use_bitmap ? round16((V + 31) / 32 * 4) : 0));
  const int64_t row = blockIdx.x;
  if (row >= N) return;
  const int lane = threadIdx.x, nthreads = blockDim.x;
  const TS* s = s_all + row * V;
  TS* g = g_all ? g_all + row * V : nullptr;
  const int64_t* idx = idx_all + row * k;
  const acc_t* lp = lp_all + row * k;
  acc_t* topk_s = topk_s_all + row * k;
  const acc_t neg_inf = -INFINITY;

  const int64_t y = labels[row];
  const bool ce_on = y != ignore;
  if (!row_prologue(row, y, ce_on, ce_on || kl_all, V, lane, nthreads, g, row_ce, row_kl, status)) return;
  const int64_t words = (V + 31) / 32;
  if (use_bitmap)
    for (int64_t w = lane; w < words; w += nthreads) bitmap[w] = 0u;

  const int64_t h = vector_head<VEC, TS, TS>(s, nullptr, g, V);
  Stats<acc_t> st = stats_empty<acc_t>();
  bool bad_s = false, bad_m = false;
  for_row<VEC>(
      V, h, lane, nthreads,
      [&](int64_t j) {
        const TS sv = s[j];
        if (CACHE) cs[j] = sv;
        const acc_t xs[1] = {static_cast<acc_t>(sv)};
        consume<1, false>(st, xs, xs, inv_tau, tp, bad_s, bad_m);
      },
      [&](int64_t j) {
        const Pack<TS, VEC> ps = *reinterpret_cast<const Pack<TS, VEC>*>(s + j);
        acc_t xs[VEC];
#pragma unroll
        for (int i = 0; i < VEC; ++i) {
          if (CACHE) cs[j + i] = ps.v[i];
          xs[i] = static_cast<acc_t>(ps.v[i]);
        }
        consume<VEC, false>(st, xs, xs, inv_tau, tp, bad_s, bad_m);
      });
  const acc_t sy = ce_on ? static_cast<acc_t>(s[y]) : acc_t(0);
  if (group_any<false>(bad_s)) {
    if (lane == 0) {
      status[row] = kStudentNonFinite;
      row_ce[row] = row_kl[row] = acc_t(0);
    }
    return;
  }
  st = group_combine<false>(st, inv_tau, sh);  // also orders the bitmap clearing before its use
  const acc_t lZ1 = dlog(st.Z1), lZt = dlog(st.Zt);

  // Gather the top-k entries.
  acc_t qsum = 0, eK = 0, klK = 0, cnt = 0;
  int bad = kOk;
  for (int64_t j = lane; j < k; j += nthreads) {
    const acc_t l = lp[j];
    if (l == neg_inf) continue;  // padding
    if (!(l <= acc_t(kTopkMassTolerance))) {
      bad = kTopkBadLogprob;
      continue;
    }
    const int64_t t = idx[j];
    if (t < 0 || t >= V) {
      bad = kTopkIndexOutOfRange;
      continue;
    }
    if (use_bitmap) {
      const unsigned int bit = 1u << (t & 31);
      if (atomicOr(&bitmap[t >> 5], bit) & bit) bad = kTopkDuplicate;
    }
    const acc_t stv = static_cast<acc_t>(s[t]);
    topk_s[j] = stv;
    const acc_t xt = (stv - st.Ms) * inv_tau;
    const acc_t q = dexp(l);
    qsum += q;
    eK += dexp(xt);
    klK += q * (l - (xt - lZt));
    cnt += acc_t(1);
  }
  qsum = group_sum<false>(qsum, sh);
  eK = group_sum<false>(eK, sh);
  klK = group_sum<false>(klK, sh);
  cnt = group_sum<false>(cnt, sh);
  const int bad_code = group_sum<false>(bad, sh);  // any non-zero: report the first kind seen below
  __shared__ int first_bad;
  if (lane == 0) first_bad = 0;
  __syncthreads();
  if (bad != kOk) atomicCAS(&first_bad, 0, bad);
  __syncthreads();
  if (bad_code != 0 || qsum > acc_t(1.0 + kTopkMassTolerance)) {
    if (lane == 0) {
      status[row] = first_bad != 0 ? first_bad : kTopkBadLogprob;
      row_ce[row] = row_kl[row] = acc_t(0);
    }
    return;
  }
  const bool has_rest = rest_all != nullptr;
  acc_t rest = has_rest ? rest_all[row] : (qsum < acc_t(1) ? acc_t(1) - qsum : acc_t(0));
  if (has_rest && !(rest >= acc_t(0) && rest <= acc_t(1))) {
    if (lane == 0) {
      status[row] = kBadRestMass;
      row_ce[row] = row_kl[row] = acc_t(0);
    }
    return;
  }
  const bool tail = cnt < acc_t(V);
  if (!tail) rest = acc_t(0);
  acc_t p_rest = tail ? (st.Zt - eK) / st.Zt : acc_t(0);
  const acc_t tiny = std::is_same<acc_t, double>::value ? acc_t(1e-300) : acc_t(1e-30);
  if (tail && p_rest < tiny) p_rest = tiny;
  const acc_t rest_term = rest > acc_t(0) ? rest * (dlog(rest) - dlog(p_rest)) : acc_t(0);
  // The other divergences on the k+1 events (kd_loss_cpu.cc): D, S = Σ p h.
  const bool gen = div != kDivFwd;
  const acc_t lc = coef > 0 ? log(coef) : acc_t(-INFINITY), l1c = coef < 1 ? log1p(-coef) : acc_t(-INFINITY);
  auto topk_term = [&](int64_t j, acc_t& pj, acc_t& hj) {
    const acc_t l = lp[j];
    const acc_t lpj = (topk_s[j] - st.Ms) * inv_tau - lZt;
    pj = dexp(lpj);
    acc_t dt;
    div_term_d<acc_t>(div, coef, lc, l1c, pj, lpj, dexp(l), l, dt, hj);
    return dt;
  };
  acc_t D = klK + rest_term, S = 0, h_rest = 0;
  if (gen) {
    acc_t Dp = 0, Sp = 0;
    for (int64_t j = lane; j < k; j += nthreads) {
      if (lp[j] == neg_inf) continue;
      acc_t pj, hj;
      Dp += topk_term(j, pj, hj);
      Sp += pj * hj;
    }
    D = group_sum<false>(Dp, sh);
    S = group_sum<false>(Sp, sh);
    if (tail) {
      acc_t dt;
      div_term_d<acc_t>(div, coef, lc, l1c, p_rest, dlog(p_rest), rest, rest > 0 ? dlog(rest) : neg_inf, dt, h_rest);
      D += dt;
      S += p_rest * h_rest;
    }
  }
  if (lane == 0) {
    status[row] = kOk;
    row_ce[row] = ce_on ? st.Ms + lZ1 - sy : acc_t(0);
    row_kl[row] = D;
  }
  if (!g) return;

  const acc_t a = ce_on ? scales[0] : acc_t(0), bk = scales[1] * inv_tau;
  // d KL/d s_j = (mass·p_τ,j − q_j)/τ on K, p_τ,j·(mass − r/P_rest)/τ off K; mass = Σq + r.
  const acc_t mass = qsum + rest;
  const acc_t tail_factor = mass - (rest > acc_t(0) ? rest / p_rest : acc_t(0));
  const acc_t c1 = a / st.Z1, ct = gen ? bk * (h_rest - S) / st.Zt : bk * tail_factor / st.Zt;
  auto grad_of = [&](acc_t xs) {
    acc_t et, e1;
    exp_pair(xs - st.Ms, inv_tau, tp, et, e1);
    return c1 * e1 + ct * et;
  };
  for_row<VEC>(
      V, h, lane, nthreads,
      [&](int64_t j) { g[j] = static_cast<TS>(grad_of(static_cast<acc_t>(CACHE ? cs[j] : s[j]))); },
      [&](int64_t j) {
        Pack<TS, VEC> ps;
        if (CACHE) {
#pragma unroll
          for (int i = 0; i < VEC; ++i) ps.v[i] = cs[j + i];
        } else {
          ps = *reinterpret_cast<const Pack<TS, VEC>*>(s + j);
        }
        Pack<TS, VEC> out;
#pragma unroll
        for (int i = 0; i < VEC; ++i) out.v[i] = static_cast<TS>(grad_of(static_cast<acc_t>(ps.v[i])));
        *reinterpret_cast<Pack<TS, VEC>*>(g + j) = out;
      });
  __syncthreads();
  // Top-k tokens get (p_τ − q)/τ, written afresh.
  bool y_in_k = false;
  for (int64_t j = lane; j < k; j += nthreads) {
    const acc_t l = lp[j];
    if (l == neg_inf) continue;
    const int64_t t = idx[j];
    const acc_t xs = topk_s[j] - st.Ms;
    acc_t kl_part;
    if (gen) {
      acc_t pj, hj;
      topk_term(j, pj, hj);
      kl_part = pj * (hj - S);
    } else {
      kl_part = mass * dexp(xs * inv_tau - lZt) - dexp(l);
    }
    const acc_t gt = a * (dexp(xs - lZ1) - (t == y ? acc_t(1) : acc_t(0))) + bk * kl_part;
    g[t] = static_cast<TS>(gt);
    y_in_k |= t == y;
  }
  const bool y_done = group_any<false>(y_in_k);
  if (ce_on && !y_done && lane == 0) {
    const acc_t xs = sy - st.Ms;
    const acc_t tf = gen ? h_rest - S : tail_factor;
    g[y] = static_cast<TS>(a * (dexp(xs - lZ1) - acc_t(1)) + bk * tf * dexp(xs * inv_tau - lZt));
  }
}

template <typename TS, typename TM>
constexpr int pack_of() {
  return 16 / (sizeof(TS) < sizeof(TM) ? sizeof(TS) : sizeof(TM));
}

int tau_mode(double tau) { return tau == 1.0 ? 1 : tau == 2.0 ? 2 : tau == 4.0 ? 4 : 0; }

template <typename T>
constexpr bool kCacheable = !std::is_same<T, double>::value;

// Whether one row (plus the static scratch) fits the opt-in shared memory of a
// block; runtime.configure({cudaRowCache: false}) (MENTOR_KD_CUDA_ROW_CACHE=0) turns the
// row cache off (A/B timing).
bool row_cache_fits(size_t bytes) {
  if (!runtime::cuda_row_cache()) return false;
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  return bytes + sizeof(SharedScratch) + 64 <= prop->sharedMemPerBlockOptin;
}

using Rows = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

struct Prepared {
  at::Tensor student, labels, scales, grad, row_ce, row_kl, status;
};

Prepared prepare(const at::Tensor& student, const at::Tensor& labels, const at::Tensor& scales, double tau,
                 int64_t grad_mode) {
  TORCH_CHECK(student.dim() == 2, "kd_rows: student must be [N,V]");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == student.size(0), "kd_rows: labels must be [N]");
  TORCH_CHECK(tau > 0 && std::isfinite(tau), "kd_rows: tau must be > 0");
  TORCH_CHECK(grad_mode >= kGradNone && grad_mode <= kGradInplace, "kd_rows: bad grad_mode");
  TORCH_CHECK(grad_mode != kGradInplace || student.is_contiguous(),
              "kd_rows: an in-place gradient needs contiguous student logits");
  Prepared p;
  p.student = student.contiguous();
  const auto acc = student.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  p.labels = labels.to(at::kLong).contiguous();
  p.scales = scales.to(student.device(), acc).contiguous();
  TORCH_CHECK(p.scales.numel() == 2, "kd_rows: scales must hold [ce_scale, kl_scale]");
  const int64_t N = student.size(0);
  p.row_ce = at::empty({N}, student.options().dtype(acc));
  p.row_kl = at::empty({N}, student.options().dtype(acc));
  p.status = at::empty({N}, student.options().dtype(at::kInt));
  p.grad = grad_mode == kGradNone  ? at::empty({0}, student.options())
           : grad_mode == kGradNew ? at::empty_like(p.student)
                                   : p.student;
  return p;
}

Rows kd_rows_cuda(const at::Tensor& student, const at::Tensor& mentor_in, const at::Tensor& labels,
                  const at::Tensor& scales, double tau, bool kl_all_rows, int64_t ignore_index, int64_t grad_mode,
                  int64_t divergence, double coef) {
  TORCH_CHECK(divergence >= kDivFwd && divergence <= kDivTvd, "kd_rows: bad divergence id ", divergence);
  TORCH_CHECK(mentor_in.sizes() == student.sizes(), "kd_rows: mentor must match student's shape");
  TORCH_CHECK((student.scalar_type() == at::kDouble) == (mentor_in.scalar_type() == at::kDouble),
              "kd_rows: float64 needs float64 student and mentor logits");
  c10::cuda::CUDAGuard guard(student.device());
  Prepared p = prepare(student, labels, scales, tau, grad_mode);
  at::Tensor mentor = mentor_in.contiguous();
  const int64_t N = p.student.size(0), V = p.student.size(1);
  if (N == 0 || V == 0) {
    p.row_ce.zero_();
    p.row_kl.zero_();
    p.status.zero_();
    return {p.row_ce, p.row_kl, p.status, p.grad};
  }
  const bool want = grad_mode != kGradNone;
  const int tp = tau_mode(tau);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.student.scalar_type(), "kd_rows_cuda", [&] {
    using TS = scalar_t;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mentor.scalar_type(), "kd_rows_cuda_mentor", [&] {
      using TM = scalar_t;
      // float64 runs only with float64 on both sides (the host checks): no mixed-double kernels.
      if constexpr (std::is_same<TS, double>::value != std::is_same<TM, double>::value) {
        TORCH_CHECK(false, "kd_rows: float64 needs float64 student and mentor logits");
      } else {
        using acc_t = typename std::conditional<std::is_same<TS, double>::value, double, float>::type;
        constexpr int VEC = pack_of<TS, TM>();
        const TS* s = p.student.data_ptr<TS>();
        const TM* m = mentor.data_ptr<TM>();
        TS* g = want ? p.grad.data_ptr<TS>() : nullptr;
        const acc_t inv_tau = acc_t(1.0 / tau);
        const auto* l = p.labels.data_ptr<int64_t>();
        const auto* sc = p.scales.data_ptr<acc_t>();
        auto* ce = p.row_ce.data_ptr<acc_t>();
        auto* kl = p.row_kl.data_ptr<acc_t>();
        auto* st = p.status.data_ptr<int32_t>();
        const size_t cache_bytes = static_cast<size_t>(round16(V * int64_t(sizeof(TS))) + V * int64_t(sizeof(TM)));
        if (V <= kWarpRowMaxV) {
          const int64_t blocks = (N + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock;
          kd_rows_kernel<TS, TM, acc_t, VEC, true, false>
              <<<static_cast<unsigned int>(blocks), kWarpRowsPerBlock * 32, 0, stream>>>(
                  s, m, g, l, sc, ce, kl, st, N, V, inv_tau, tp, kl_all_rows, ignore_index,
                  static_cast<int>(divergence), acc_t(coef));
        } else if (kCacheable<TS> && want && row_cache_fits(cache_bytes)) {
          // float64 (gradcheck only) is never cached: at 1024 threads it would spill.
          auto kernel = kd_rows_kernel<TS, TM, acc_t, VEC, false, kCacheable<TS>>;
          C10_CUDA_CHECK(
              cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(cache_bytes)));
          kernel<<<static_cast<unsigned int>(N), kCachedBlockThreads, cache_bytes, stream>>>(
              s, m, g, l, sc, ce, kl, st, N, V, inv_tau, tp, kl_all_rows, ignore_index, static_cast<int>(divergence),
              acc_t(coef));
        } else {
          kd_rows_kernel<TS, TM, acc_t, VEC, false, false><<<static_cast<unsigned int>(N), kBlockThreads, 0, stream>>>(
              s, m, g, l, sc, ce, kl, st, N, V, inv_tau, tp, kl_all_rows, ignore_index, static_cast<int>(divergence),
              acc_t(coef));
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  });
  return {p.row_ce, p.row_kl, p.status, p.grad};
}

Rows kd_topk_rows_cuda(const at::Tensor& student, const at::Tensor& indices, const at::Tensor& logprobs,
                       const c10::optional<at::Tensor>& rest_mass, const at::Tensor& labels, const at::Tensor& scales,
                       double tau, bool kl_all_rows, int64_t ignore_index, int64_t grad_mode, int64_t divergence,
                       double coef) {
  TORCH_CHECK(divergence >= kDivFwd && divergence <= kDivTvd, "kd_topk_rows: bad divergence id ", divergence);
  c10::cuda::CUDAGuard guard(student.device());
  Prepared p = prepare(student, labels, scales, tau, grad_mode);
  const int64_t N = p.student.size(0), V = p.student.size(1);
  TORCH_CHECK(indices.dim() == 2 && indices.size(0) == N, "kd_topk_rows: indices must be [N,k]");
  TORCH_CHECK(logprobs.sizes() == indices.sizes(), "kd_topk_rows: logprobs must match indices");
  const auto acc = p.row_ce.scalar_type();
  at::Tensor idx = indices.to(at::kLong).contiguous();
  at::Tensor lp = logprobs.to(acc).contiguous();
  at::Tensor rest;
  if (rest_mass.has_value() && rest_mass->defined()) {
    TORCH_CHECK(rest_mass->numel() == N, "kd_topk_rows: rest_mass must be [N]");
    rest = rest_mass->reshape({N}).to(acc).contiguous();
  }
  const int64_t k = idx.size(1);
  if (N == 0 || V == 0) {
    p.row_ce.zero_();
    p.row_kl.zero_();
    p.status.zero_();
    return {p.row_ce, p.row_kl, p.status, p.grad};
  }
  at::Tensor topk_s = at::empty({N, k}, p.student.options().dtype(acc));
  const bool want = grad_mode != kGradNone;
  const int tp = tau_mode(tau);
  // The duplicate check needs V bits of shared memory; beyond 48 KiB it is skipped.
  const size_t bitmap_bytes = static_cast<size_t>((V + 31) / 32) * sizeof(unsigned int);
  const bool use_bitmap = bitmap_bytes <= 48 * 1024;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.student.scalar_type(), "kd_topk_rows_cuda", [&] {
    using TS = scalar_t;
    using acc_t = typename std::conditional<std::is_same<TS, double>::value, double, float>::type;
    constexpr int VEC = pack_of<TS, TS>();
    const size_t bitmap_part = use_bitmap ? static_cast<size_t>(round16((V + 31) / 32 * 4)) : 0;
    const size_t cache_bytes = bitmap_part + static_cast<size_t>(V) * sizeof(TS);
    const bool cache = kCacheable<TS> && want && row_cache_fits(cache_bytes);
    auto* sp = p.student.data_ptr<TS>();
    auto* ip = idx.data_ptr<int64_t>();
    auto* lpp = lp.data_ptr<acc_t>();
    auto* rp = rest.defined() ? rest.data_ptr<acc_t>() : nullptr;
    auto* gp = want ? p.grad.data_ptr<TS>() : nullptr;
    auto* yp = p.labels.data_ptr<int64_t>();
    auto* scp = p.scales.data_ptr<acc_t>();
    auto* cep = p.row_ce.data_ptr<acc_t>();
    auto* klp = p.row_kl.data_ptr<acc_t>();
    auto* stp = p.status.data_ptr<int32_t>();
    auto* tsp = topk_s.data_ptr<acc_t>();
    const acc_t inv_tau = acc_t(1.0 / tau);
    if (cache) {
      auto kernel = kd_topk_rows_kernel<TS, acc_t, VEC, kCacheable<TS>>;
      C10_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(cache_bytes)));
      kernel<<<static_cast<unsigned int>(N), kCachedBlockThreads, cache_bytes, stream>>>(
          sp, ip, lpp, rp, gp, yp, scp, cep, klp, stp, tsp, N, V, k, inv_tau, tp, kl_all_rows, ignore_index, use_bitmap,
          static_cast<int>(divergence), acc_t(coef));
    } else {
      kd_topk_rows_kernel<TS, acc_t, VEC, false><<<static_cast<unsigned int>(N), kBlockThreads, bitmap_part, stream>>>(
          sp, ip, lpp, rp, gp, yp, scp, cep, klp, stp, tsp, N, V, k, inv_tau, tp, kl_all_rows, ignore_index, use_bitmap,
          static_cast<int>(divergence), acc_t(coef));
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {p.row_ce, p.row_kl, p.status, p.grad};
}

}  // namespace

// Bench hooks (kd_bench.cc).
void cuda_synchronize() { C10_CUDA_CHECK(cudaDeviceSynchronize()); }
void cuda_reset_peak_memory() { c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device()); }
int64_t cuda_allocated_bytes() {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device()).allocated_bytes[0].current;
}
int64_t cuda_peak_allocated_bytes() {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device()).allocated_bytes[0].peak;
}
std::string cuda_device_name() { return at::cuda::getCurrentDeviceProperties()->name; }

TORCH_LIBRARY_IMPL(mentor_kd_loss, CUDA, m) {
  m.impl("kd_rows", TORCH_FN(kd_rows_cuda));
  m.impl("kd_topk_rows", TORCH_FN(kd_topk_rows_cuda));
}

}  // namespace kd
}  // namespace mentor_kd
